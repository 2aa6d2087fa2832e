#!/usr/bin/env python3
"""`make sam-build`'s check: every function of template.yaml has a `bootstrap` under
.aws-sam/build/<LogicalId>/ and it is an arm64 (aarch64) ELF executable.

With --same-as DIR, each bootstrap must also be byte for byte DIR/<Binary>/bootstrap
(cargo-lambda's target/lambda; <Binary> is the template's BuildProperties.Binary): the binaries `make test-arm64` runs under qemu are
then the ones a deploy uploads.

Run with .venv's Python: the template is read with the SAM CLI's own YAML reader (it
knows CloudFormation's short tags such as !Ref).
"""

import argparse
import filecmp
import sys
from pathlib import Path

from samcli.yamlhelper import yaml_parse

# ELF header fields, from the System V ABI (elf(5)): magic, EI_CLASS 2 = 64-bit,
# EI_DATA 1 = little-endian, e_type at offset 16 (2 = executable, 3 = shared object,
# which a static-pie binary is), e_machine at offset 18; EM_AARCH64 = 183 = 0xB7.
ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EXECUTABLE_TYPES = (2, 3)
EM_AARCH64 = 0xB7


def elf_problem(path: Path) -> str | None:
    """Why `path` is not a little-endian 64-bit aarch64 executable, or None."""
    header = path.read_bytes()[:20]
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        return "not an ELF file"
    if header[4] != ELFCLASS64 or header[5] != ELFDATA2LSB:
        return "not a 64-bit little-endian ELF"
    e_type = int.from_bytes(header[16:18], "little")
    e_machine = int.from_bytes(header[18:20], "little")
    if e_type not in EXECUTABLE_TYPES:
        return f"ELF type {e_type}, not an executable"
    if e_machine != EM_AARCH64:
        return f"e_machine {e_machine:#x}, not aarch64 ({EM_AARCH64:#x})"
    return None


def template_functions(template: Path) -> dict[str, str]:
    """Logical id -> binary name of every AWS::Serverless::Function."""
    resources = yaml_parse(template.read_text())["Resources"]
    return {
        logical_id: (resource.get("Metadata") or {})
        .get("BuildProperties", {})
        .get("Binary", logical_id)
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--same-as", type=Path, help="directory of the binaries tested")
    args = parser.parse_args()

    functions = template_functions(args.template)
    if not functions:
        print(f"{args.template}: no AWS::Serverless::Function", file=sys.stderr)
        return 1
    problems = []
    for logical_id, binary in sorted(functions.items()):
        bootstrap = args.build_dir / logical_id / "bootstrap"
        if not bootstrap.is_file():
            problems.append(f"{bootstrap}: missing")
            continue
        problem = elf_problem(bootstrap)
        if problem:
            problems.append(f"{bootstrap}: {problem}")
            continue
        tested = args.same_as / binary / "bootstrap" if args.same_as else None
        if tested and not (tested.is_file() and filecmp.cmp(bootstrap, tested, shallow=False)):
            problems.append(f"{bootstrap}: not the same as {tested}")
            continue
        print(f"ok  {bootstrap}  aarch64 ELF, {bootstrap.stat().st_size} bytes")
    for problem in problems:
        print(f"BAD {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
