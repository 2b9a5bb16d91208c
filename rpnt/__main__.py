import sys

from rpnt.cli import main

sys.exit(main())
