"""Instructions in the innermost loops of a function, read from `objdump -d` output.

A loop is a backward branch to an address inside the same function; an innermost loop contains
no other loop. For each function whose demangled name matches the pattern, prints every
innermost loop with its instruction count and an opcode histogram. Used for the "instructions per
64 weights" figures of tflite_delegate/docs/neon_kernels.md (aarch64 and x86-64 objdump syntax):

    aarch64-linux-gnu-objdump -d --no-show-raw-insn -C \
        tflite_delegate/build-aarch64/libttq_delegate.so > /tmp/dis.txt
    python3 scripts/count_loop_instructions.py /tmp/dis.txt 'BitSlicedDotprod|NibbleTile'
"""

import argparse
import collections
import re

FUNCTION = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSTRUCTION = re.compile(r"^\s+([0-9a-f]+):\t(\S+)\s*(.*)$")
TARGET = re.compile(r"\b([0-9a-f]+) <")
BRANCHES = ("b", "cbz", "cbnz", "tbz", "tbnz")


def is_branch(opcode):
    return opcode in BRANCHES or opcode.startswith("b.") or opcode.startswith("j")


def read_functions(path):
    functions = {}
    current = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = FUNCTION.match(line)
            if m:
                current = functions.setdefault(m.group(2), [])
                continue
            m = INSTRUCTION.match(line)
            if m and current is not None:
                current.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return functions


def innermost_loops(instructions):
    if not instructions:
        return []
    start = instructions[0][0]
    loops = set()
    for address, opcode, operands in instructions:
        m = TARGET.search(operands)
        if is_branch(opcode) and m:
            target = int(m.group(1), 16)
            if start <= target <= address:
                loops.add((target, address))
    return sorted(
        loop
        for loop in loops
        if not any(o != loop and loop[0] <= o[0] and o[1] <= loop[1] for o in loops)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("disassembly", help="output of objdump -d --no-show-raw-insn -C")
    parser.add_argument("pattern", help="regular expression on the demangled function name")
    args = parser.parse_args()
    for name, instructions in read_functions(args.disassembly).items():
        if not re.search(args.pattern, name):
            continue
        print(name)
        for begin, end in innermost_loops(instructions):
            body = [opcode for address, opcode, _ in instructions if begin <= address <= end]
            histogram = collections.Counter(body).most_common()
            print(
                f"  loop {begin:x}-{end:x}: {len(body)} instructions: "
                + ", ".join(f"{opcode} {count}" for opcode, count in histogram)
            )


if __name__ == "__main__":
    main()
