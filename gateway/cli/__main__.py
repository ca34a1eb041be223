import sys

from gateway.cli import main

# Guarded: a spawned process (the tool search model's) imports the main
# module of a gateway run as a script.
if __name__ == "__main__":
    sys.exit(main())
