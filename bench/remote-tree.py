#!/usr/bin/env python3
"""Helper for bench/remote.sh: make its test tree.

  remote-tree.py gen SRC SIZE_BYTES SEED

The tree is a function of SEED alone (no copy of /usr), so two runs on any machine
back up the same bytes:

  - about 45 %: a few large random (incompressible) files, 16..128 MiB;
  - about 30 %: compressible text, log files of a few MiB each (lines drawn from a
    vocabulary of Zipf-like words, with time stamps), no two blocks alike, so
    nothing dedups and zstd has real work;
  - about 25 %: many small files, 64 B .. 64 KiB (log-uniform), 2/3 text and 1/3
    random, in folders of 200 in two levels;
  - a few odd entries: an empty file and folder, a symlink, a name with spaces and
    non-ASCII letters.

Every file and folder gets the same fixed mtime. On stdout: one JSON line with the
byte and file counts of each part.
"""

import json
import os
import random
import sys

MiB = 1 << 20
MTIME = 1700000000


def make_words(rng, n):
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 7.5, 7, 6.7, 6.3, 6, 6, 4.3, 4, 2.8, 2.8, 2.4, 2.4, 2.2, 2, 2, 1.9, 1.5,
               1, 0.8, 0.15, 0.15, 0.1, 0.07]
    words = set()
    while len(words) < n:
        k = rng.choice([2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10, 12])
        words.add("".join(rng.choices(letters, weights, k=k)))
    words = sorted(words)
    rng.shuffle(words)
    return words


class Text:
    """Log-like lines: a time stamp, a host and service, and words from a
    vocabulary with Zipf-like frequencies. Drawing whole lines from a pool keeps
    generation fast; the time stamps make every block unique."""

    def __init__(self, rng):
        self.rng = rng
        words = make_words(rng, 20000)
        cum = []
        acc = 0.0
        for i in range(len(words)):
            acc += 1.0 / (i + 1) ** 0.9
            cum.append(acc)
        self.lines = []
        for _ in range(30000):
            line = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(4, 14)))
            self.lines.append(line[0].upper() + line[1:] + ".\n")
        self.hosts = ["web%02d" % i for i in range(12)]
        self.services = ["nginx", "sshd", "cron", "backup", "kernel", "postgres", "app"]
        self.t = 1690000000.0

    def block(self, size):
        """About size bytes (exactly size) of log lines."""
        rng = self.rng
        out = []
        n = 0
        while n < size:
            k = 256
            body = rng.choices(self.lines, k=k)
            for b in body:
                self.t += rng.expovariate(20.0)
                line = "%.6f %s %s[%d]: %s" % (self.t, rng.choice(self.hosts),
                                               rng.choice(self.services), rng.randint(100, 40000), b)
                out.append(line)
                n += len(line)
                if n >= size:
                    break
        return "".join(out).encode()[:size]


def write_random(rng, path, size):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def write_text(text, path, size):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MiB)
            f.write(text.block(n))
            left -= n


def gen(src, size, seed):
    os.makedirs(src)
    rng = random.Random(seed)
    text = Text(rng)
    parts = {}

    # Large random files: ~45 %, 16..128 MiB each (smaller for small trees).
    d = os.path.join(src, "random")
    os.makedirs(d)
    budget = int(size * 0.45)
    top = max(2, min(128, budget // (4 * MiB)))
    done = i = 0
    while done < budget:
        s = min(budget - done, rng.randint(max(1, top // 8), top) * MiB + rng.randint(0, MiB))
        write_random(rng, os.path.join(d, "r%03d.bin" % i), s)
        done += s
        i += 1
    parts["random"] = {"files": i, "bytes": done}

    # Compressible text: ~30 %, log files of 1..16 MiB.
    d = os.path.join(src, "logs")
    os.makedirs(d)
    budget = int(size * 0.30)
    done = i = 0
    while done < budget:
        s = min(budget - done, rng.randint(1, 16) * MiB + rng.randint(0, MiB))
        write_text(text, os.path.join(d, "app-%03d.log" % i), s)
        done += s
        i += 1
    parts["text"] = {"files": i, "bytes": done}

    # Many small files: the rest, 64 B .. 64 KiB log-uniform, 2/3 text, 1/3 random.
    d = os.path.join(src, "small")
    budget = size - parts["random"]["bytes"] - parts["text"]["bytes"]
    done = i = 0
    while done < budget:
        sub = os.path.join(d, "%02d" % (i // 4000), "%03d" % (i // 200 % 20))
        if i % 200 == 0:
            os.makedirs(sub, exist_ok=True)
        s = min(int(2 ** rng.uniform(6, 16)), budget - done) or 1
        if i % 3 == 2:
            with open(os.path.join(sub, "f%06d.bin" % i), "wb") as f:
                f.write(rng.randbytes(s))
        else:
            with open(os.path.join(sub, "f%06d.txt" % i), "wb") as f:
                f.write(text.block(s))
        done += s
        i += 1
    parts["small"] = {"files": i, "bytes": done}

    # A few other kinds of entry.
    x = os.path.join(src, "misc")
    os.makedirs(os.path.join(x, "empty-dir"))
    open(os.path.join(x, "empty-file"), "w").close()
    os.symlink("../logs", os.path.join(x, "link-to-logs"))
    with open(os.path.join(x, "name with spaces & ünïcödé.txt"), "w") as f:
        f.write("hello\n")

    for dirpath, dirnames, filenames in os.walk(src, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
        os.utime(dirpath, (MTIME, MTIME))
    print(json.dumps(parts))


def main():
    if len(sys.argv) != 5 or sys.argv[1] != "gen":
        sys.exit(__doc__.strip().splitlines()[2].strip())
    gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))


if __name__ == "__main__":
    main()
