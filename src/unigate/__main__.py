from unigate.cli import main

raise SystemExit(main())
