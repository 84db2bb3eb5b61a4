"""The `perseus` command of an installed package (`pip install .`).

The command is the C++ program (the same one a CMake build puts in
build/bin/perseus); the wheel carries it in perseus/_bin/ with the shipped
profiles in perseus/data/. This entry point runs it in place of the Python
process, so exit codes and signals are the program's own.
"""

import os
import pathlib
import sys

_PACKAGE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    program = _PACKAGE / "_bin" / "perseus"
    if not program.is_file():
        sys.exit(f"perseus: error: the perseus program is missing from {program.parent} "
                 "(this package was not installed with `pip install .`; in a build tree run "
                 "build/bin/perseus)")
    env = dict(os.environ)
    if not env.get("PERSEUS_DATA_DIR") and (_PACKAGE / "data").is_dir():
        env["PERSEUS_DATA_DIR"] = str(_PACKAGE / "data")
    os.execve(program, [str(program), *sys.argv[1:]], env)


if __name__ == "__main__":
    main()
