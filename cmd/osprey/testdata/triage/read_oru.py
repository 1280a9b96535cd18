# Reads one HL7v2 message on stdin with python-hl7 (Debian python3-hl7), a parser that shares
# nothing with Osprey's, and prints every non-empty component of the first repetition of each
# field, by segment and occurrence: {"OBX": [{"3.1": "1386000", ...}, ...], ...}.
import json
import sys

import hl7

msg = hl7.parse(sys.stdin.buffer.read().decode("utf-8"))
out = {}
for name in sorted({str(seg[0]) for seg in msg}):
    occurrences = []
    for n in range(1, len(msg.segments(name)) + 1):
        values = {}
        for field in range(1, 40):
            for comp in range(1, 10):
                try:
                    v = msg.extract_field(name, n, field, 1, comp)
                except (KeyError, IndexError):
                    continue
                if v:
                    values["%d.%d" % (field, comp)] = v
        occurrences.append(values)
    out[name] = occurrences
json.dump(out, sys.stdout)
