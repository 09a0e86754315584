"""`python -m playbook` runs the same command as the `playbook` script."""

from playbook.cli import main

if __name__ == "__main__":
    main(prog_name="playbook")
