from byokctl.cli import main

raise SystemExit(main())
