"""`python -m bench`: the same command as the installed `bench` script (bench.cli)."""

from bench.cli import main

if __name__ == "__main__":
    main()
