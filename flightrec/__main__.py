from flightrec.cli import main

raise SystemExit(main())
