"""
lazyfs.py BACKING MOUNTPOINT CONTROL_SOCKET [CAPACITY]: a FUSE file system that loses what a power cut loses (after LazyFS,
the file system Jepsen uses for this, https://github.com/dsrhaslab/lazyfs).

Everything written is kept in memory, as a kernel's page cache keeps it, and reaches BACKING only when POSIX says
it must survive a power loss:
- a file's data and size on fsync/fdatasync of that file (IEEE Std 1003.1, fsync(): "all data for the open file
  descriptor ... is to be transferred to the storage device");
- a directory's entries (files created, renamed in or out, unlinked) on fsync of that directory. fsync of a file
  says nothing of the entry naming it, so a file created and fsynced but whose directory was not fsynced is gone
  after a cut (its data too: nothing names it), and a rename without a directory fsync is undone.

BACKING holds only the durable state, by inode, not by path: data/<ino> per file and meta.json (each directory's
durable entries), so that "data durable, name not" can be expressed at all. A mount starts from that state.

Control, one line per connection on CONTROL_SOCKET (a Unix socket), answered with one JSON line:
- "cut" or "cut torn": the power goes. From this moment every operation fails with EIO (a dead disk), so nothing
  later becomes durable; "torn" first writes to BACKING a prefix of the last unsynced write, cut at a 4 KiB page
  boundary inside it (a write a disk completed only in part). Unmount and mount again to see what survived.
- "stats": counts of fsyncs, directory fsyncs, writes.
CAPACITY (bytes, 0 for none): a write that would make the files' sizes add up to more fails with ENOSPC, a full disk.
The file system prints "lazyfs ready" once mounted.
"""
import errno
import json
import os
import socket
import stat
import sys
import threading
import time

import fusepy

PAGE = 4096
ROOT = 1


class Node:
    def __init__(self, ino, kind, mode):
        self.ino = ino
        self.kind = kind  # 'f' or 'd'
        self.mode = mode
        self.mtime = time.time()
        # directories: current entries (name -> ino)
        self.entries = {}
        # files: current size, pages written since the last fsync, and `floor`: below it, bytes not in `pages`
        # are those of the backing file (above it, zeros: a truncate since the last fsync)
        self.size = 0
        self.floor = 0
        self.pages = {}


class LazyFs(fusepy.Operations):
    use_ns = True

    def __init__(self, backing, control, capacity=0):
        self.backing = backing
        self.capacity = capacity
        self.control = control
        # not `lock`: fusepy would take an attribute of that name for the FUSE lock operation
        self.mutex = threading.RLock()
        self.dead = False
        self.fds = {}
        self.handles = {}
        self.next_fh = 1
        self.last_write = None
        self.stats = {'fsyncs': 0, 'dirFsyncs': 0, 'writes': 0, 'writtenBytes': 0}
        os.makedirs(os.path.join(backing, 'data'), exist_ok=True)
        self.load()

    # --- durable state ---------------------------------------------------------------------------------------

    def meta_file(self):
        return os.path.join(self.backing, 'meta.json')

    def data_file(self, ino):
        return os.path.join(self.backing, 'data', str(ino))

    def load(self):
        try:
            with open(self.meta_file()) as f:
                meta = json.load(f)
        except FileNotFoundError:
            meta = {'next': ROOT + 1, 'nodes': {str(ROOT): {'kind': 'd', 'mode': 0o755, 'entries': {}}}}
        self.durable = {int(k): v for k, v in meta['nodes'].items()}
        self.nodes = {}
        # only what the root reaches through durable entries exists; the rest (fsynced data nothing names) goes
        reach = [ROOT]
        while reach:
            ino = reach.pop()
            m = self.durable[ino]
            node = Node(ino, m['kind'], m['mode'])
            self.nodes[ino] = node
            if node.kind == 'd':
                node.entries = dict(m['entries'])
                reach.extend(node.entries.values())
            else:
                try:
                    node.size = node.floor = os.path.getsize(self.data_file(ino))
                except FileNotFoundError:
                    pass
        self.durable = {ino: m for ino, m in self.durable.items() if ino in self.nodes}
        used = [int(name) for name in os.listdir(os.path.join(self.backing, 'data'))]
        # a data file fsynced after the last meta.json keeps its number from being given out again
        self.next_ino = max([meta['next'], *[i + 1 for i in used]])
        for ino in used:
            if ino not in self.nodes:
                os.unlink(self.data_file(ino))

    def save_meta(self):
        tmp = self.meta_file() + '.tmp'
        with open(tmp, 'w') as f:
            json.dump({'next': self.next_ino, 'nodes': {str(k): v for k, v in self.durable.items()}}, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.meta_file())
        fd = os.open(self.backing, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def backing_fd(self, ino):
        fd = self.fds.get(ino)
        if fd is None:
            fd = self.fds[ino] = os.open(self.data_file(ino), os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    # --- helpers -----------------------------------------------------------------------------------------------

    def check(self):
        if self.dead:
            raise fusepy.FuseOSError(errno.EIO)

    def lookup(self, path):
        node = self.nodes[ROOT]
        for part in [p for p in path.split('/') if p]:
            if node.kind != 'd' or part not in node.entries:
                raise fusepy.FuseOSError(errno.ENOENT)
            node = self.nodes[node.entries[part]]
        return node

    def parent(self, path):
        head, name = os.path.split(path.rstrip('/'))
        parent = self.lookup(head or '/')
        if parent.kind != 'd':
            raise fusepy.FuseOSError(errno.ENOTDIR)
        return parent, name

    def node_of(self, path, fh):
        if fh is not None and fh in self.handles:
            return self.nodes[self.handles[fh]]
        return self.lookup(path)

    def page(self, node, idx):
        """The page `idx` of the file as it is now (a copy made writable in `pages`)."""
        page = node.pages.get(idx)
        if page is None:
            page = bytearray(PAGE)
            start = idx * PAGE
            if start < node.floor:
                data = os.pread(self.backing_fd(node.ino), min(PAGE, node.floor - start), start)
                page[: len(data)] = data
            node.pages[idx] = page
        return page

    def read_page(self, node, idx):
        page = node.pages.get(idx)
        if page is not None:
            return page
        start = idx * PAGE
        if start >= node.floor:
            return bytes(PAGE)
        data = os.pread(self.backing_fd(node.ino), min(PAGE, node.floor - start), start)
        return data + bytes(PAGE - len(data))

    def new_node(self, kind, mode):
        ino = self.next_ino
        self.next_ino += 1
        node = self.nodes[ino] = Node(ino, kind, mode)
        return node

    def open_handle(self, node):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = node.ino
        return fh

    def drop_if_unreachable(self, ino):
        """Frees an inode no current entry names and no handle holds (its durable copy stays in `durable`)."""
        if ino in self.handles.values():
            return
        for node in self.nodes.values():
            if node.kind == 'd' and ino in node.entries.values():
                return
        node = self.nodes.pop(ino, None)
        if node is not None and ino not in self.durable:
            fd = self.fds.pop(ino, None)
            if fd is not None:
                os.close(fd)
                os.unlink(self.data_file(ino))

    # --- FUSE operations ---------------------------------------------------------------------------------------

    def __call__(self, op, *args):
        with self.mutex:
            if op not in ('init', 'destroy', 'release', 'releasedir'):
                self.check()
            return super().__call__(op, *args)

    def init(self, path):
        threading.Thread(target=self.serve_control, daemon=True).start()
        print('lazyfs ready', flush=True)

    def getattr(self, path, fh=None):
        node = self.node_of(path, fh)
        if node.kind == 'd':
            mode, size, nlink = stat.S_IFDIR | node.mode, PAGE, 2
        else:
            mode, size, nlink = stat.S_IFREG | node.mode, node.size, 1
        t = int(node.mtime * 1e9)
        return {
            'st_mode': mode, 'st_size': size, 'st_nlink': nlink, 'st_ino': node.ino, 'st_uid': os.getuid(),
            'st_gid': os.getgid(), 'st_atime': t, 'st_mtime': t, 'st_ctime': t, 'st_blocks': (size + 511) // 512,
        }

    def access(self, path, amode):
        self.lookup(path)
        return 0

    def statfs(self, path):
        blocks, free = 1 << 24, 1 << 23
        if self.capacity:
            blocks = self.capacity // PAGE
            free = max(0, self.capacity - sum(n.size for n in self.nodes.values() if n.kind == 'f')) // PAGE
        return {'f_bsize': PAGE, 'f_frsize': PAGE, 'f_blocks': blocks, 'f_bfree': free, 'f_bavail': free,
                'f_files': 1 << 20, 'f_ffree': 1 << 19, 'f_namemax': 255}

    def readdir(self, path, fh):
        node = self.lookup(path)
        return ['.', '..', *node.entries.keys()]

    def opendir(self, path):
        self.lookup(path)
        return 0

    def mkdir(self, path, mode):
        parent, name = self.parent(path)
        if name in parent.entries:
            raise fusepy.FuseOSError(errno.EEXIST)
        parent.entries[name] = self.new_node('d', mode & 0o7777).ino
        parent.mtime = time.time()

    def rmdir(self, path):
        parent, name = self.parent(path)
        node = self.lookup(path)
        if node.kind != 'd':
            raise fusepy.FuseOSError(errno.ENOTDIR)
        if node.entries:
            raise fusepy.FuseOSError(errno.ENOTEMPTY)
        del parent.entries[name]
        self.drop_if_unreachable(node.ino)

    def create(self, path, mode, fi=None):
        parent, name = self.parent(path)
        ino = parent.entries.get(name)
        node = self.nodes[ino] if ino is not None else self.new_node('f', mode & 0o7777)
        parent.entries[name] = node.ino
        parent.mtime = time.time()
        return self.open_handle(node)

    def open(self, path, flags):
        node = self.lookup(path)
        if flags & os.O_TRUNC:
            self.truncate(path, 0)
        return self.open_handle(node)

    def release(self, path, fh):
        ino = self.handles.pop(fh, None)
        if ino is not None and not self.dead:
            self.drop_if_unreachable(ino)
        return 0

    def flush(self, path, fh):
        return 0

    def read(self, path, size, offset, fh):
        node = self.node_of(path, fh)
        end = min(offset + size, node.size)
        out = bytearray()
        pos = offset
        while pos < end:
            idx, within = divmod(pos, PAGE)
            take = min(PAGE - within, end - pos)
            out += self.read_page(node, idx)[within : within + take]
            pos += take
        return bytes(out)

    def write(self, path, data, offset, fh):
        node = self.node_of(path, fh)
        growth = offset + len(data) - node.size
        if self.capacity and growth > 0:
            used = sum(n.size for n in self.nodes.values() if n.kind == 'f')
            if used + growth > self.capacity:
                raise fusepy.FuseOSError(errno.ENOSPC)
        pos, done = offset, 0
        while done < len(data):
            idx, within = divmod(pos, PAGE)
            take = min(PAGE - within, len(data) - done)
            self.page(node, idx)[within : within + take] = data[done : done + take]
            pos += take
            done += take
        node.size = max(node.size, offset + len(data))
        node.mtime = time.time()
        self.last_write = (node.ino, offset, bytes(data))
        self.stats['writes'] += 1
        self.stats['writtenBytes'] += len(data)
        return len(data)

    def truncate(self, path, length, fh=None):
        node = self.node_of(path, fh)
        if length < node.size:
            node.floor = min(node.floor, length)
            last = (length + PAGE - 1) // PAGE
            for idx in [i for i in node.pages if i >= last]:
                del node.pages[idx]
            within = length % PAGE
            if within and (length // PAGE) in node.pages:
                page = node.pages[length // PAGE]
                page[within:] = bytes(PAGE - within)
        node.size = length
        node.mtime = time.time()

    def fsync(self, path, datasync, fh):
        node = self.node_of(path, fh)
        self.stats['fsyncs'] += 1
        if node.kind == 'd':
            return self.fsyncdir(path, datasync, fh)
        fd = self.backing_fd(node.ino)
        durable_size = os.fstat(fd).st_size
        if node.floor < durable_size:
            os.ftruncate(fd, node.floor)
        for idx, page in node.pages.items():
            start = idx * PAGE
            if start < node.size:
                os.pwrite(fd, bytes(page[: min(PAGE, node.size - start)]), start)
        os.ftruncate(fd, node.size)
        os.fsync(fd)
        node.pages = {}
        node.floor = node.size
        if self.last_write and self.last_write[0] == node.ino:
            self.last_write = None
        return 0

    def fsyncdir(self, path, datasync, fh):
        node = self.lookup(path)
        self.stats['dirFsyncs'] += 1
        self.durable[node.ino] = {'kind': 'd', 'mode': node.mode, 'entries': dict(node.entries)}
        for ino in node.entries.values():
            child = self.nodes[ino]
            if ino not in self.durable:
                self.durable[ino] = {'kind': child.kind, 'mode': child.mode, 'entries': {}}
        self.save_meta()
        return 0

    def unlink(self, path):
        parent, name = self.parent(path)
        node = self.lookup(path)
        if node.kind == 'd':
            raise fusepy.FuseOSError(errno.EISDIR)
        del parent.entries[name]
        parent.mtime = time.time()
        self.drop_if_unreachable(node.ino)

    def rename(self, old, new):
        src_parent, src_name = self.parent(old)
        node = self.lookup(old)
        dst_parent, dst_name = self.parent(new)
        replaced = dst_parent.entries.get(dst_name)
        if replaced is not None and self.nodes[replaced].kind == 'd' and self.nodes[replaced].entries:
            raise fusepy.FuseOSError(errno.ENOTEMPTY)
        del src_parent.entries[src_name]
        dst_parent.entries[dst_name] = node.ino
        if replaced is not None and replaced != node.ino:
            self.drop_if_unreachable(replaced)

    def chmod(self, path, mode):
        self.lookup(path).mode = mode & 0o7777

    def chown(self, path, uid, gid):
        self.lookup(path)

    def utimens(self, path, times=None):
        node = self.lookup(path)
        node.mtime = times[1] / 1e9 if times else time.time()

    # --- control -----------------------------------------------------------------------------------------------

    def cut(self, torn):
        with self.mutex:
            self.dead = True
            torn_bytes = 0
            if torn and self.last_write is not None:
                ino, offset, data = self.last_write
                # the first pages of the write reached the disk, the rest did not (a cut inside one page is a
                # sector-level tear the disk itself may make; LazyFS tears at page boundaries as here)
                boundary = (offset // PAGE + 1) * PAGE
                if boundary < offset + len(data) and os.path.exists(self.data_file(ino)):
                    pages = (offset + len(data) - boundary + PAGE - 1) // PAGE
                    torn_bytes = boundary - offset + (pages // 2) * PAGE
                    os.pwrite(self.backing_fd(ino), data[:torn_bytes], offset)
                    os.fsync(self.backing_fd(ino))
            lost = sum(len(n.pages) for n in self.nodes.values()) * PAGE
            return {'cut': True, 'tornBytes': torn_bytes, 'unsyncedPagesBytes': lost, **self.stats}

    def serve_control(self):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.control):
            os.unlink(self.control)
        server.bind(self.control)
        server.listen(4)
        while True:
            conn, _ = server.accept()
            with conn:
                line = conn.makefile().readline().strip()
                if line.startswith('cut'):
                    answer = self.cut(line == 'cut torn')
                elif line == 'stats':
                    with self.mutex:
                        answer = dict(self.stats)
                else:
                    answer = {'error': f'unknown command {line!r}'}
                conn.sendall((json.dumps(answer) + '\n').encode())


if __name__ == '__main__':
    backing, mountpoint, control = sys.argv[1:4]
    capacity = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    # No kernel caching of attributes or entries: after a cut they would show what the disk no longer has.
    fusepy.FUSE(LazyFs(backing, control, capacity), mountpoint, foreground=True, nothreads=False, fsname='lazyfs', big_writes=True, max_write=131072,
                attr_timeout=0, entry_timeout=0, negative_timeout=0, default_permissions=True)
