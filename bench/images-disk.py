#!/usr/bin/env python3
"""Helper for bench/images.sh: fill and change the root filesystem of the test disk.

  images-disk.py fill      MNT USED DELETE SEED     fill MNT until USED bytes are used, with
                                                   DELETE bytes written in between and
                                                   deleted again
  images-disk.py change    MNT BYTES SEED [PICK]   change about BYTES of the files; PICK is
                                                   mixed (default), bytes or files
  images-disk.py efi       DIR SEED                the files of a small EFI partition
  images-disk.py blockhash FILE OUT                digest of every 4 KiB block of FILE
  images-disk.py blockdiff A B CHUNK               bytes in changed 4 KiB blocks and in
                                                   the CHUNK-sized chunks holding them

fill and change print one JSON line of what they did. The generated parts are a
function of SEED; the /usr part depends on what is installed under /usr. Content
helpers (random, text, base64 writers) are those of files-tree.py.
"""

import hashlib
import importlib.util
import json
import os
import random
import shutil
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("files_tree", os.path.join(HERE, "files-tree.py"))
ft = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ft)

MiB = 1 << 20
KiB = 1 << 10


def du(p):
    """Bytes of regular files under p (p itself may be a file)."""
    st = os.lstat(p)
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    return ft.tree_size(p)


def usr_units(root, limit=64 * MiB):
    """Entries of root as copy units (path, bytes, split); folders larger than limit
    are split: listed themselves with split=True (copied without their content, for
    their mode and owner) and followed by their entries, so big folders like
    /usr/lib/x86_64-linux-gnu come in pieces."""
    out = []
    for name in sorted(os.listdir(root)):
        p = os.path.join(root, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        size = du(p) if (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) else 0
        if stat.S_ISDIR(st.st_mode) and size > limit:
            out.append((p, 0, True))
            out.extend(usr_units(p, limit))
        else:
            out.append((p, size, False))
    return out


def copy_usr(mnt, budget, rng):
    """Copy parts of /usr/bin, /usr/share, /usr/lib (15/35/50 % of budget) into
    mnt/usr, units picked in random order; when a part of /usr is used up, go on
    with another copy of it under mnt/srv/copyN/usr. Returns (bytes, copies)."""
    shares = [("/usr/bin", 0.15), ("/usr/share", 0.35), ("/usr/lib", 0.50)]
    whole = {}            # copy index -> paths copied with their content
    split = {}            # copy index -> folders copied without content
    total = 0
    carry = 0
    for root, frac in shares:
        want = int(budget * frac) + carry
        units = usr_units(root)
        dirs = [p for p, _, sp in units if sp]
        files = [(p, s) for p, s, sp in units if not sp]
        got = 0
        copy = 0
        while got < want * 0.98:
            order = files[:]
            rng.shuffle(order)
            added = 0
            for p, s in order:
                if got + s > want * 1.02:
                    continue
                whole.setdefault(copy, []).append(p)
                got += s
                added += s
                if got >= want * 0.98:
                    break
            split.setdefault(copy, []).extend(dirs)
            if added == 0:
                break
            copy += 1
        carry = max(0, want - got)
        total += got
    copies = sorted(set(whole))
    for copy in copies:
        dest = mnt if copy == 0 else os.path.join(mnt, "srv", "copy%d" % copy)
        os.makedirs(dest, exist_ok=True)
        for names, extra in ((split.get(copy, []), "--no-recursion"), (whole[copy], "")):
            if not names:
                continue
            data = "\0".join(p.lstrip("/") for p in sorted(set(names))) + "\0"
            # tar keeps symlinks, hard links, modes, owners and times
            cmd = ("tar -C / %s -cf - --null -T - 2>/dev/null | tar -C %s -xf -"
                   % (extra, ft.sh_quote(dest)))
            subprocess.run(["bash", "-c", cmd], input=data.encode(), check=True)
    return total, len(copies)


def words_cum(rng):
    words = ft.make_words(rng, 20000)
    cum = []
    acc = 0.0
    for i in range(len(words)):
        acc += 1.0 / (i + 1) ** 0.9
        cum.append(acc)
    return words, cum


def used_bytes(mnt):
    st = os.statvfs(mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def fill(mnt, target, delete, seed):
    """Fill mnt until `target` bytes of it are used (as df counts them) by data that
    stays: about 60 % /usr copies, 20 % large random files (photos, archives), 15 %
    compressible files (text, logs, base64) and small files for the rest; and about
    `delete` bytes written between them (downloads, caches, old logs) and deleted
    at the end, so the free space holds old data."""
    rng = random.Random(seed)
    words, cum = words_cum(rng)
    trash = []
    trash_bytes = 0
    size = int((target - used_bytes(mnt)) * 0.95)   # file bytes; blocks and inodes need more

    def junk(n):
        """Write about n bytes of files that will be deleted."""
        nonlocal trash_bytes
        d = os.path.join(mnt, "var", "tmp", "junk")
        os.makedirs(d, exist_ok=True)
        done = 0
        while done < n:
            s = min(n - done, rng.randint(1, 48) * MiB)
            p = os.path.join(d, "j%04d" % len(trash))
            if len(trash) % 2:
                ft.write_random(rng, p, s)
            else:
                ft.write_text(rng, words, cum, p, s)
            trash.append(p)
            done += s
        trash_bytes += done

    # /usr copies first (the "installed system"), some junk after them
    usr_bytes, copies = copy_usr(mnt, int(size * 0.60), rng)
    junk(delete // 3)

    # large random files in a home folder, junk in between
    d = os.path.join(mnt, "home", "user", "media")
    os.makedirs(d)
    budget = int(size * 0.20)
    done = 0
    i = 0
    while done < budget:
        s = min(budget - done, rng.randint(4, 96) * MiB + rng.randint(0, MiB))
        ft.write_random(rng, os.path.join(d, "m%03d.bin" % i), s)
        done += s
        i += 1
        if i == 3:
            junk(delete // 3)
    rand_bytes = done

    # compressible files: documents (text), logs, base64 blobs
    budget = int(size * 0.15)
    done = 0
    i = 0
    for sub in ("home/user/docs", "var/log/app"):
        os.makedirs(os.path.join(mnt, sub), exist_ok=True)
    while done < budget:
        s = min(budget - done, rng.randint(1, 32) * MiB + rng.randint(0, MiB))
        if i % 4 == 3:
            ft.write_base64(rng, os.path.join(mnt, "home/user/docs", "b%03d.b64" % i), s)
        elif i % 4 == 2:
            ft.write_text(rng, words, cum, os.path.join(mnt, "var/log/app", "app%03d.log" % i), s)
        else:
            ft.write_text(rng, words, cum, os.path.join(mnt, "home/user/docs", "t%03d.txt" % i), s)
        done += s
        i += 1
    text_bytes = done
    junk(delete - trash_bytes)

    # many small files (source trees, mail, thumbnails): 64 B .. 64 KiB, until the
    # target is reached (at least 2 % of the data)
    done = 0
    i = 0
    d = os.path.join(mnt, "home", "user", "small")
    while True:
        if i % 200 == 0:
            if done >= size * 0.02 and used_bytes(mnt) - trash_bytes >= target:
                break
        sub = os.path.join(d, "%02d" % (i // 4000), "%03d" % (i // 200 % 20))
        if i % 200 == 0:
            os.makedirs(sub, exist_ok=True)
        s = int(2 ** rng.uniform(6, 16))
        p = os.path.join(sub, "f%06d" % i)
        with open(p, "wb") as f:
            f.write(rng.randbytes(s) if i % 3 == 2 else ft.text_block(rng, words, cum, s))
        done += s
        i += 1
    small_bytes = done
    small_files = i

    for p in trash:
        os.remove(p)
    shutil.rmtree(os.path.join(mnt, "var", "tmp", "junk"))
    print(json.dumps({"usr_bytes": usr_bytes, "usr_copies": copies, "random_bytes": rand_bytes,
                      "text_bytes": text_bytes, "small_bytes": small_bytes,
                      "small_files": small_files, "deleted_bytes": trash_bytes,
                      "deleted_files": len(trash)}))


def plan_changes(files, want, pick, step, seed, skip):
    """Regions to overwrite: (path, offset, length). pick "bytes": systematic sampling
    over all file bytes in path order, one point every `step` bytes (a file's chance
    grows with its size; a large file can get several regions); pick "files": every
    `step`-th file in path order. A file up to 1 MiB is replaced whole; a larger one
    gets a region of 256 KiB .. 2 MiB around the point. Files in skip are left out."""
    rng = random.Random(seed)
    out = []
    total = 0
    seen = set(skip)
    if pick == "bytes":
        pos = rng.randrange(step)
        acc = 0
        points = []
        for p, size in files:
            while pos < acc + size:
                points.append((p, size, pos - acc))
                pos += step
            acc += size
    else:
        points = [(p, size, rng.randrange(size)) for p, size in files[rng.randrange(step)::step]]
    for p, size, at in points:
        if size <= MiB:
            if p in seen:
                continue
            seen.add(p)
            out.append((p, 0, size))
            total += size
        else:
            if p in skip:
                continue
            n = rng.randint(256 * KiB, 2 * MiB)
            off = max(0, min(size - n, at - n // 2))
            n = min(n, size)
            out.append((p, off, n))
            total += n
        if total >= want:
            break
    return out, total


def change(mnt, budget, seed, pick="mixed"):
    """Change about `budget` bytes, spread across the tree:
    - 70 %: overwrite regions of files (see plan_changes) with random bytes, picked
      by bytes, by files, or (mixed) half of the bytes each way; a file replaced whole
      is written in place or, every other one, as a new file renamed over the old one
      (new blocks, like a package update or an editor's save); a region of a large
      file is overwritten in place (a database, a VM disk);
    - 20 %: appends of 1 KiB .. 256 KiB of log lines to the logs and text files;
    - 10 %: a few new files (random and text).
    Prints counts and the bytes written (the "changed bytes")."""
    rng = random.Random(seed * 7919 + 2)
    words, cum = words_cum(rng)
    files = [(p, os.lstat(p).st_size) for p in ft.regular_files(mnt) if "/lost+found/" not in p]
    files = [(p, s) for p, s in files if s > 0]
    stats = {"pick": pick, "files_total": len(files), "files_replaced_in_place": 0,
             "files_replaced_renamed": 0, "regions_in_large_files": 0, "appends": 0, "new_files": 0}

    want_all = int(budget * 0.70)
    modes = [("bytes", want_all // 2), ("files", want_all - want_all // 2)] if pick == "mixed" \
        else [(pick, want_all)]
    total_bytes = sum(s for _, s in files)
    changed = set()
    written = 0
    k = 0
    for mode, want in modes:
        # size the sampling step so the plan comes to `want` bytes
        step = max(1, total_bytes // 1000) if mode == "bytes" else max(1, len(files) // 1000)
        for _ in range(4):
            _, got = plan_changes(files, 1 << 62, mode, step, seed, changed)
            if got == 0:
                break
            step = max(1, int(step * got / want))
        regions, _ = plan_changes(files, want, mode, step, seed, changed)
        for p, off, n in regions:
            size = os.lstat(p).st_size
            if off == 0 and n == size and k % 2 == 1:
                tmp = p + ".cairn-bench-new"
                with open(tmp, "wb") as f:
                    f.write(rng.randbytes(n))
                shutil.copystat(p, tmp)
                st = os.lstat(p)
                os.chown(tmp, st.st_uid, st.st_gid)
                os.rename(tmp, p)
                stats["files_replaced_renamed"] += 1
            else:
                with open(p, "r+b") as f:
                    f.seek(off)
                    f.write(rng.randbytes(n))
                if n == size:
                    stats["files_replaced_in_place"] += 1
                else:
                    stats["regions_in_large_files"] += 1
            if n == size:
                k += 1
            changed.add(p)
            written += n

    # appends to logs and text files (round robin), or any files if there are none
    want = int(budget * 0.20)
    logs = [p for p, _ in files if p.endswith((".log", ".txt")) or "/log/" in p]
    logs = logs or [p for p, _ in files]
    done = 0
    i = 0
    while done < want:
        p = logs[(i * 7) % len(logs)]
        n = min(rng.randint(KiB, 256 * KiB), want - done)
        with open(p, "ab") as f:
            f.write(ft.text_block(rng, words, cum, n))
        stats["appends"] += 1
        done += n
        i += 1
    written += done

    # new files
    want = budget - written
    d = os.path.join(mnt, "home", "user", "new")
    os.makedirs(d, exist_ok=True)
    done = 0
    j = 0
    while done < want:
        n = min(want - done, max(MiB, want // 5))
        if j % 2:
            ft.write_random(rng, os.path.join(d, "n%02d.bin" % j), n)
        else:
            ft.write_text(rng, words, cum, os.path.join(d, "n%02d.txt" % j), n)
        done += n
        j += 1
    stats["new_files"] = j
    written += done
    stats["bytes_written"] = written
    print(json.dumps(stats))


def blockhash(path, out):
    """An 8-byte digest of every 4 KiB block of path, into out."""
    with open(path, "rb") as f, open(out, "wb") as o:
        while True:
            buf = f.read(16 * MiB)
            if not buf:
                break
            mv = memoryview(buf)
            o.write(b"".join(hashlib.blake2b(mv[i:i + 4096], digest_size=8).digest()
                             for i in range(0, len(buf), 4096)))


def blockdiff(a, b, chunk):
    """Bytes in changed 4 KiB blocks, and in the `chunk`-sized aligned chunks that
    hold at least one, between two blockhash files."""
    with open(a, "rb") as f:
        A = f.read()
    with open(b, "rb") as f:
        B = f.read()
    per = chunk // 4096
    blocks = 0
    chunks = set()
    for i in range(0, min(len(A), len(B)), 8):
        if A[i:i + 8] != B[i:i + 8]:
            blocks += 1
            chunks.add(i // 8 // per)
    print("%d %d" % (blocks * 4096, len(chunks) * chunk))


def efi(d, seed):
    """A small EFI system partition: a boot loader, a kernel-sized file, configs."""
    rng = random.Random(seed + 3)
    os.makedirs(os.path.join(d, "EFI", "BOOT"))
    os.makedirs(os.path.join(d, "EFI", "debian"))
    ft.write_random(rng, os.path.join(d, "EFI", "BOOT", "BOOTX64.EFI"), 950 * KiB)
    ft.write_random(rng, os.path.join(d, "EFI", "debian", "grubx64.efi"), 2 * MiB + 123)
    ft.write_random(rng, os.path.join(d, "EFI", "debian", "shimx64.efi"), 930 * KiB)
    ft.write_random(rng, os.path.join(d, "vmlinuz"), 8 * MiB + 4321)
    with open(os.path.join(d, "EFI", "debian", "grub.cfg"), "w") as f:
        f.write("search.fs_uuid 0000 root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n")


def main():
    cmd = sys.argv[1]
    if cmd == "fill":
        fill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "change":
        change(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "mixed")
    elif cmd == "blockhash":
        blockhash(sys.argv[2], sys.argv[3])
    elif cmd == "blockdiff":
        blockdiff(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "efi":
        efi(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
