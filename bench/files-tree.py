#!/usr/bin/env python3
"""Helper for bench/files.sh: make, change and fingerprint the test tree.

  files-tree.py gen      SRC SIZE_BYTES SEED   make the tree (usr copy + generated files)
  files-tree.py modify   SRC PERCENT SEED      change PERCENT % of the regular files
  files-tree.py manifest ROOT OUT              write content and metadata lists of ROOT
  files-tree.py compare  A B                   compare two manifests (exit 1 if content differs)
  files-tree.py stats    ROOT                  one line: files, dirs, symlinks, bytes

Everything generated is a function of SEED (and, for the /usr part, of what is
installed under /usr), so two runs on one machine back up the same bytes.
"""

import hashlib
import json
import os
import random
import stat
import subprocess
import sys

MiB = 1 << 20


# ---------------------------------------------------------------- generation

def usr_part(src, budget):
    """Copy whole top-level entries of /usr/bin, /usr/share, /usr/lib (in that
    order, sorted) until about `budget` bytes; entries that would overshoot are
    skipped so smaller ones further on can fill the rest."""
    # Split the budget so all three roots are represented.
    shares = [("/usr/bin", 0.15), ("/usr/share", 0.35), ("/usr/lib", 0.50)]
    picked = []
    total = 0
    carry = 0
    for root, frac in shares:
        want = int(budget * frac) + carry
        got = 0
        for name in sorted(os.listdir(root)):
            p = os.path.join(root, name)
            size = tree_size(p)
            if size == 0 or got + size > want * 1.02:
                continue
            picked.append(p)
            got += size
            if got >= want * 0.98:
                break
        carry = max(0, want - got)
        total += got
    lst = os.path.join(os.path.dirname(src.rstrip("/")), "usr-list.txt")
    with open(lst, "w") as f:
        for p in picked:
            f.write(p.lstrip("/") + "\n")
    # tar keeps symlinks, hardlinks, modes, owners and times.
    cmd = ("tar -C / --no-recursion -cf - --null -T - 2>/dev/null | tar -C %s -xf -" % sh_quote(src))
    names = []
    for p in picked:
        names.append(p.lstrip("/"))
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames.sort()
            for n in sorted(dirnames) + sorted(filenames):
                names.append(os.path.join(dirpath, n).lstrip("/"))
    # parents of the picked entries, so modes of /usr, /usr/lib are copied too
    parents = sorted({os.path.dirname(p).lstrip("/") for p in picked} | {"usr"})
    data = "\0".join(parents + names) + "\0"
    subprocess.run(["bash", "-c", cmd], input=data.encode(), check=True)
    return total


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def tree_size(p):
    st = os.lstat(p)
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if not stat.S_ISDIR(st.st_mode):
        return 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(p):
        for n in filenames:
            try:
                s = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if stat.S_ISREG(s.st_mode):
                total += s.st_size
    return total


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


def text_block(rng, words, cum, size):
    """About `size` bytes of lines of words; Zipf-like word frequencies."""
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(6, 16)))
        line = line[0].upper() + line[1:] + ".\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def write_random(rng, path, size):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def write_text(rng, words, cum, path, size):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MiB)
            f.write(text_block(rng, words, cum, n))
            left -= n


def write_base64(rng, path, size):
    import base64
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MiB)
            b = base64.encodebytes(rng.randbytes(n * 3 // 4 + 3))[:n]
            f.write(b)
            left -= n


def gen(src, size, seed):
    os.makedirs(src, exist_ok=True)
    rng = random.Random(seed)
    usr_bytes = usr_part(src, int(size * 0.40))
    rest = size - usr_bytes
    words = make_words(rng, 20000)
    cum = []
    acc = 0.0
    for i in range(len(words)):
        acc += 1.0 / (i + 1) ** 0.9
        cum.append(acc)

    # Large random (incompressible) files: ~40 % of the rest, including one exact
    # duplicate and one copy shifted by a few bytes (dedup with CDC).
    d = os.path.join(src, "data", "random")
    os.makedirs(d)
    budget = int(rest * 0.40)
    reserve = min(32 * MiB, budget // 8)
    unique = budget - 2 * reserve - 1234
    sizes = []
    while sum(sizes) < unique:
        sizes.append(rng.randint(16, 160) * MiB + rng.randint(0, MiB))
    sizes[-1] -= sum(sizes) - unique
    if len(sizes) > 1 and sizes[-1] < MiB:
        sizes[-2] += sizes.pop()
    for i, s in enumerate(sizes):
        write_random(rng, os.path.join(d, "r%03d.bin" % i), s)
    dup = min(reserve, sizes[0])
    with open(os.path.join(d, "r000.bin"), "rb") as f:
        head = f.read(dup)
    with open(os.path.join(d, "copy-of-r000-head.bin"), "wb") as f:
        f.write(head)
    with open(os.path.join(d, "shifted-r000-head.bin"), "wb") as f:
        f.write(rng.randbytes(1234))
        f.write(head)
    done = sum(sizes) + 2 * dup + 1234
    budget = int(rest * 0.45)
    rest_small = rest - done - budget

    # Large compressible files: ~45 % of the rest; 3/4 words, 1/4 base64.
    d = os.path.join(src, "data", "text")
    os.makedirs(d)
    done = 0
    i = 0
    while done < budget:
        s = min(budget - done, rng.randint(8, 96) * MiB + rng.randint(0, MiB))
        if i % 4 == 3:
            write_base64(rng, os.path.join(d, "b%03d.b64" % i), s)
        else:
            write_text(rng, words, cum, os.path.join(d, "t%03d.txt" % i), s)
        done += s
        i += 1

    # Many small files: the remaining ~15 %, sizes log-uniform 64 B .. 64 KiB,
    # in folders of ~200 in two levels; 2/3 text, 1/3 random.
    d = os.path.join(src, "data", "small")
    budget = rest_small
    done = 0
    i = 0
    while done < budget:
        sub = os.path.join(d, "%02d" % (i // 4000), "%03d" % (i // 200 % 20))
        if i % 200 == 0:
            os.makedirs(sub, exist_ok=True)
        s = int(2 ** rng.uniform(6, 16))
        s = min(s, budget - done) or 1
        p = os.path.join(sub, "f%06d" % i)
        with open(p, "wb") as f:
            if i % 3 == 2:
                f.write(rng.randbytes(s))
                os.rename(p, p + ".bin")
            else:
                f.write(text_block(rng, words, cum, s))
                os.rename(p, p + ".txt")
        done += s
        i += 1

    # A few extra entry kinds a real tree has.
    x = os.path.join(src, "data", "misc")
    os.makedirs(os.path.join(x, "empty-dir"))
    open(os.path.join(x, "empty-file"), "w").close()
    os.symlink("../text", os.path.join(x, "link-to-text"))
    os.symlink("/nonexistent/target", os.path.join(x, "dangling-link"))
    with open(os.path.join(x, "mode-0600"), "w") as f:
        f.write("private\n")
    os.chmod(os.path.join(x, "mode-0600"), 0o600)
    with open(os.path.join(x, "name with spaces & ünïcödé.txt"), "w") as f:
        f.write("hello\n")
    os.link(os.path.join(x, "mode-0600"), os.path.join(x, "hardlink-to-mode-0600"))

    # Fixed times for the generated part so repeated runs give identical trees.
    t = 1700000000
    for dirpath, dirnames, filenames in os.walk(os.path.join(src, "data"), topdown=False):
        for n in filenames + dirnames:
            p = os.path.join(dirpath, n)
            os.utime(p, (t, t), follow_symlinks=False)
        os.utime(dirpath, (t, t))


# ---------------------------------------------------------------- modification

def regular_files(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(filenames):
            p = os.path.join(dirpath, n)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out.append(p)
    return out


def modify(src, percent, seed):
    rng = random.Random(seed * 7919 + 1)
    files = regular_files(src)
    step = max(1, round(100 / percent))
    start = rng.randrange(step)
    chosen = files[start::step]
    changed_bytes = 0
    for k, p in enumerate(chosen):
        st = os.lstat(p)
        # hardlinked files keep their other names in step; fine, and rare
        if k % 2 == 0 or st.st_size < 8192:
            n = rng.randint(1, 4096)
            with open(p, "ab") as f:
                f.write(rng.randbytes(n))
        else:
            n = 4096
            off = rng.randrange(0, st.st_size - n)
            with open(p, "r+b") as f:
                f.seek(off)
                f.write(rng.randbytes(n))
        changed_bytes += n
        os.utime(p, None)  # mtime = now
    print(json.dumps({"files_total": len(files), "files_changed": len(chosen),
                      "bytes_written": changed_bytes}))


# ---------------------------------------------------------------- manifests

def manifest(root, out):
    """Two lists per entry (relative path): content (type, size, sha256 or link
    target) and metadata (mode, uid, gid, mtime)."""
    rows = {}
    root = root.rstrip("/")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(dirnames) + sorted(filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            m = st.st_mode
            meta = "%o %d %d" % (stat.S_IMODE(m), st.st_uid, st.st_gid)
            if stat.S_ISREG(m):
                with open(p, "rb") as f:
                    h = hashlib.file_digest(f, "sha256").hexdigest()
                content = "f %d %s" % (st.st_size, h)
                meta += " %d" % st.st_mtime_ns
            elif stat.S_ISLNK(m):
                content = "l " + os.readlink(p)
                meta = "%d %d" % (st.st_uid, st.st_gid)
            elif stat.S_ISDIR(m):
                content = "d"  # dir mtimes are left out: tools differ in restoring them
            else:
                content = "o %o" % stat.S_IFMT(m)
            rows[rel] = (content, meta)
    with open(out, "w") as f:
        json.dump(rows, f)


def compare(a, b):
    with open(a) as f:
        A = json.load(f)
    with open(b) as f:
        B = json.load(f)
    missing = sorted(set(A) - set(B))
    extra = sorted(set(B) - set(A))
    content = sorted(k for k in set(A) & set(B) if A[k][0] != B[k][0])
    meta = sorted(k for k in set(A) & set(B) if A[k][0] == B[k][0] and A[k][1] != B[k][1])
    res = {"entries": len(A), "missing": len(missing), "extra": len(extra),
           "content_diff": len(content), "meta_diff": len(meta),
           "examples": (["missing " + k for k in missing[:3]] + ["extra " + k for k in extra[:3]] +
                        ["content %s: %s vs %s" % (k, A[k][0][:40], B[k][0][:40]) for k in content[:3]] +
                        ["meta %s: %s vs %s" % (k, A[k][1], B[k][1]) for k in meta[:3]])}
    print(json.dumps(res))
    sys.exit(1 if (missing or extra or content) else 0)


def stats(root):
    files = dirs = links = 0
    size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirs += len([d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))])
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, n))
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
            elif stat.S_ISLNK(st.st_mode):
                links += 1
    print("%d %d %d %d" % (files, dirs, links, size))


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "modify":
        modify(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "manifest":
        manifest(sys.argv[2], sys.argv[3])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif cmd == "stats":
        stats(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
