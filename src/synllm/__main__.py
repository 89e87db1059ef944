from synllm.cli import main

raise SystemExit(main())
