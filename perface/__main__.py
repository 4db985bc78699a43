import sys

from perface.cli.main import main

sys.exit(main())
