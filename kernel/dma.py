# DMA-capable buffers for apps (the vmspace_alloc analogue): one region carved once from the
# C DMA pool (which never frees), handed out in pieces by a first-fit free list, with a limit
# per app. A piece is a memoryview slice of the region: physically contiguous and identity
# mapped, so its address (_kernel.address) can go to a device as is.
import errno

ALIGN = 64  # a cache line
_ZEROS = memoryview(bytes(512))


def _zero(buf):
    n = len(buf)
    done = 0
    while done < n:
        step = min(512, n - done)
        buf[done:done + step] = _ZEROS[:step]
        done += step


class Pool:
    def __init__(self, carve, address, size):
        """carve(size) -> memoryview over fresh memory; address(buf) -> its first byte's address."""
        self._carve = carve
        self._address = address
        self.size = size
        self.region = None  # carved on first use
        self.base = 0
        self.free_list = []  # [[offset, size]], sorted by offset, never adjacent
        self.used = {}  # offset -> size

    def _ensure(self):
        if self.region is None:
            self.region = self._carve(self.size)
            self.base = self._address(self.region)
            self.free_list = [[0, self.size]]

    def alloc(self, size):
        if size <= 0:
            raise ValueError("size must be positive")
        self._ensure()
        need = (size + ALIGN - 1) & ~(ALIGN - 1)
        for i, block in enumerate(self.free_list):
            offset, room = block
            if room >= need:
                if room == need:
                    self.free_list.pop(i)
                else:
                    block[0] = offset + need
                    block[1] = room - need
                self.used[offset] = need
                buf = self.region[offset:offset + size]
                _zero(buf)
                return buf, need
        raise OSError(errno.ENOMEM, "DMA pool exhausted (%d bytes asked, %d free)"
                      % (size, self.free_bytes()))

    def offset_of(self, buf):
        offset = self._address(buf) - self.base
        if offset not in self.used:
            raise ValueError("not a buffer from this pool")
        return offset

    def free(self, buf):
        """Return a buffer; returns the bytes given back."""
        offset = self.offset_of(buf)
        size = self.used.pop(offset)
        free_list = self.free_list
        i = 0
        while i < len(free_list) and free_list[i][0] < offset:
            i += 1
        free_list.insert(i, [offset, size])
        # Merge with the next block, then with the previous one.
        if i + 1 < len(free_list) and offset + size == free_list[i + 1][0]:
            free_list[i][1] += free_list.pop(i + 1)[1]
        if i > 0 and free_list[i - 1][0] + free_list[i - 1][1] == offset:
            free_list[i - 1][1] += free_list.pop(i)[1]
        return size

    def free_bytes(self):
        if self.region is None:
            return self.size
        return sum(block[1] for block in self.free_list)
