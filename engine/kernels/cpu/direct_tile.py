"""The register-tiled inner loops of the direct convolution, generated as LLVM IR and compiled for
this CPU by llvmlite, then bound by symbol so numba kernels call it (and stay cacheable on disk),
as engine.kernels.cpu.blas binds the BLAS.

Why not numba: numba has no SIMD vector type, and LLVM does not keep a tile of accumulators in
registers across a reduction loop written over arrays. Written here with explicit vectors, each
step of the loop is a handful of loads and a dozen or more FMAs on registers, like a GEMM
microkernel, but it reads its operand straight from the zero-bordered image instead of a column
matrix.

Vectors are 256 bits (AVX2), and also 512 bits where the CPU has AVX-512: twice the multiply-adds
per instruction, and 32 vector registers, so a tile holds up to six vectors per channel instead of
three. Which width a convolution uses depends on its row width (lanes_for).

Two tiles. The row tile (`tile`) vectorises along output rows; the channel tile (`channel_tile`)
along channels, for rows too narrow for a vector and for the weight gradient.

The row tile: TILE_CHANNELS output channels x `nv` (1..vectors_per_tile()) vectors of `lanes`
consecutive output positions. Its arguments:
    x      the zero-bordered source (flat), xoff[nv] each vector's first element in x,
    taps   (k,) each tap's offset in x (input channel, kernel row, kernel column, in Caffe's order),
    w      (k, TILE_CHANNELS) the tile's weights per tap (zero for missing channels),
    sums   (TILE_CHANNELS, MAX_VECTORS, lanes) scratch for what is not stored to dst,
    ooff   [nv] each vector's first element in dst, or -1 for a vector that is partly outside the
           row (its sums go to the scratch, and the caller stores the lanes that are outputs),
    dst    the output (flat), ldo its stride between channels, nm how many of the tile's channels
           exist (the rest go to the scratch),
    bias   the tile's TILE_CHANNELS biases, added (after the sum is rounded, as Caffe) if use_bias.
Each output is one FMA chain over the taps in order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

TILE_CHANNELS = 4
#: the most vectors per channel a tile computes (32 vector registers: 24 sums, 6 inputs, 1 weight)
MAX_VECTORS = 6
#: vector widths the tiles are generated for, in bits
WIDTHS = (256, 512)
#: columns (taps or output positions) per channel tile, and its most vectors of channels (24 sums)
TILE_COLUMNS = 8
MAX_CHANNEL_VECTORS = 3


def _kind(itemsize: int) -> str:
    return "f64" if itemsize == 8 else "f32"


def _name(itemsize: int, bits: int, nv: int | None = None) -> str:
    base = f"brewnet_direct_tile_{_kind(itemsize)}_{bits}"
    return base if nv is None else f"{base}_{nv}"


def _channel_name(itemsize: int, bits: int, mv: int | None = None) -> str:
    base = f"brewnet_channel_tile_{_kind(itemsize)}_{bits}"
    return base if mv is None else f"{base}_{mv}"


class _TileFunction:
    """One tile function being generated: its vector type and the pieces both tiles are made of."""

    def __init__(self, module, itemsize: int, bits: int, name: str, args: str) -> None:
        """args: one letter per argument, p a pointer to floats, q a pointer to int64, i an int64."""
        from llvmlite import ir

        self.ir = ir
        real = ir.DoubleType() if itemsize == 8 else ir.FloatType()
        self.itemsize, self.lanes = itemsize, bits // (8 * itemsize)
        self.vec = ir.VectorType(real, self.lanes)
        self.i64 = ir.IntType(64)
        fma_name = f"llvm.fma.v{self.lanes}{_kind(itemsize)}"
        self.fma = module.globals.get(fma_name) or ir.Function(
            module, ir.FunctionType(self.vec, [self.vec] * 3), fma_name)
        kinds = {"p": real.as_pointer(), "q": self.i64.as_pointer(), "i": self.i64}
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [kinds[c] for c in args]), name)
        self.fn.linkage = "internal"
        self.entry, self.loop, self.done = (self.fn.append_basic_block(n) for n in ("entry", "loop", "done"))
        self.b = ir.IRBuilder(self.entry)

    def const(self, value: int):
        return self.ir.Constant(self.i64, value)

    def element(self, pointer, *offsets):
        """The address pointer[offsets[0]][offsets[1]]... (each an int64 value or a Python int)."""
        for off in offsets:
            pointer = self.b.gep(pointer, [self.const(off) if isinstance(off, int) else off])
        return pointer

    def vector_at(self, address):
        """The address as a pointer to an unaligned vector."""
        return self.b.bitcast(address, self.vec.as_pointer())

    def load_vector(self, address):
        return self.b.load(self.vector_at(address), align=self.itemsize)

    def splat(self, scalar):
        """A vector of `scalar` in every lane."""
        ir = self.ir
        undef = ir.Constant(self.vec, ir.Undefined)
        mask = ir.Constant(ir.VectorType(ir.IntType(32), self.lanes), [0] * self.lanes)
        return self.b.shuffle_vector(self.b.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0)),
                                     undef, mask)

    def reduction(self, count, rows: int, cols: int, step):
        """rows x cols vector sums from zero over k = 0 .. count - 1 (count >= 1), in registers:
        step(k, sums) gives the next sums. Leaves the builder in the done block; the final sums."""
        b = self.b
        b.branch(self.loop)
        b.position_at_end(self.loop)
        k = b.phi(self.i64)
        k.add_incoming(self.const(0), self.entry)
        zero = self.ir.Constant(self.vec, [0.0] * self.lanes)
        sums = [[b.phi(self.vec) for _ in range(cols)] for _ in range(rows)]
        for row in sums:
            for value in row:
                value.add_incoming(zero, self.entry)
        summed = step(k, sums)
        k_next = b.add(k, self.const(1))
        k.add_incoming(k_next, self.loop)
        for row, new_row in zip(sums, summed, strict=True):
            for value, new in zip(row, new_row, strict=True):
                value.add_incoming(new, self.loop)
        b.cbranch(b.icmp_signed("<", k_next, count), self.loop, self.done)
        b.position_at_end(self.done)
        return summed


def _build_tile(module, itemsize: int, bits: int, nv: int):
    """The convolution tile for exactly nv vectors of `bits` each (see the module doc)."""
    t = _TileFunction(module, itemsize, bits, _name(itemsize, bits, nv), "pqqippqpiipi")
    x, xoff, taps, k_count, w, sums, ooff, dst, ldo, nm, bias, use_bias = t.fn.args
    b, lanes = t.b, t.lanes
    bases = [b.gep(x, [b.load(t.element(xoff, v))]) for v in range(nv)]

    def step(k, acc):
        tap = b.load(t.element(taps, k))
        xs = [t.load_vector(t.element(base, tap)) for base in bases]
        w_row = t.element(w, b.mul(k, t.const(TILE_CHANNELS)))
        return [[b.call(t.fma, [xs[v], wv, acc[i][v]]) for v in range(nv)]
                for i, wv in enumerate(t.splat(b.load(t.element(w_row, i))) for i in range(TILE_CHANNELS))]

    summed = t.reduction(k_count, TILE_CHANNELS, nv, step)
    with_bias = b.icmp_signed("!=", use_bias, t.const(0))
    offsets = [b.load(t.element(ooff, v)) for v in range(nv)]
    for i in range(TILE_CHANNELS):
        bv = t.splat(b.load(t.element(bias, i)))
        exists = b.icmp_signed("<", t.const(i), nm)
        for v in range(nv):
            value = b.select(with_bias, b.fadd(summed[i][v], bv), summed[i][v])
            slot = t.element(sums, (i * MAX_VECTORS + v) * lanes)
            out = t.element(dst, b.add(offsets[v], b.mul(t.const(i), ldo)))
            to_dst = b.and_(exists, b.icmp_signed(">=", offsets[v], t.const(0)))
            b.store(value, t.vector_at(b.select(to_dst, out, slot)), align=itemsize)
    b.ret_void()
    return t.fn


def _build_channel_tile(module, itemsize: int, bits: int, mv: int):
    """The channel tile for exactly mv vectors of channels (see channel_tile)."""
    t = _TileFunction(module, itemsize, bits, _channel_name(itemsize, bits, mv), "iqpipqpi")
    steps, step_offsets, a, lda, x, column_offsets, out, ldo = t.fn.args
    b, lanes = t.b, t.lanes
    bases = [b.gep(x, [b.load(t.element(column_offsets, j))]) for j in range(TILE_COLUMNS)]

    def step(s, acc):
        off = b.load(t.element(step_offsets, s))
        a_row = t.element(a, b.mul(s, lda))
        a_vecs = [t.load_vector(t.element(a_row, v * lanes)) for v in range(mv)]
        return [[b.call(t.fma, [a_vecs[v], xv, acc[j][v]]) for v in range(mv)]
                for j, xv in enumerate(t.splat(b.load(t.element(base, off))) for base in bases)]

    summed = t.reduction(steps, TILE_COLUMNS, mv, step)
    for j in range(TILE_COLUMNS):
        row = t.element(out, b.mul(t.const(j), ldo))
        for v in range(mv):
            slot = t.vector_at(t.element(row, v * lanes))
            b.store(b.fadd(b.load(slot, align=itemsize), summed[j][v]), slot, align=itemsize)
    b.ret_void()
    return t.fn


def _build_dispatch(module, name: str, tiles) -> None:
    """An exported function whose first argument n calls tiles[n - 1] with the rest."""
    from llvmlite import ir

    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64, *tiles[0].function_type.args]), name)
    count, *args = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    done = fn.append_basic_block("done")
    switch = b.switch(count, done)
    for n, tile_fn in enumerate(tiles, start=1):
        block = fn.append_basic_block(f"n{n}")
        switch.add_case(ir.Constant(i64, n), block)
        b.position_at_end(block)
        b.call(tile_fn, args)
        b.branch(done)
    b.position_at_end(done)
    b.ret_void()


def _host_features() -> str:
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_features().flatten()


def _compile():
    """Build and JIT every tile; the execution engine (kept alive by the caller), or None."""
    try:
        import llvmlite.binding as llvm
        from llvmlite import ir

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = ir.Module("brewnet_direct_tiles")
        module.triple = llvm.get_process_triple()
        for itemsize in (4, 8):
            for bits in WIDTHS:
                _build_dispatch(module, _name(itemsize, bits),
                                [_build_tile(module, itemsize, bits, nv) for nv in range(1, MAX_VECTORS + 1)])
                _build_dispatch(module, _channel_name(itemsize, bits),
                                [_build_channel_tile(module, itemsize, bits, mv)
                                 for mv in range(1, MAX_CHANNEL_VECTORS + 1)])
        # 512-bit vectors stay whole even where LLVM's tuning for the CPU prefers 256-bit ones
        text = str(module).replace(") {", ') "min-legal-vector-width"="512" {')
        parsed = llvm.parse_assembly(text)
        parsed.verify()
        machine = llvm.Target.from_triple(module.triple).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=_host_features(), opt=3)
        engine = llvm.create_mcjit_compiler(parsed, machine)
        engine.finalize_object()
        for itemsize in (4, 8):
            for bits in WIDTHS:
                for name in (_name(itemsize, bits), _channel_name(itemsize, bits)):
                    llvm.add_symbol(name, engine.get_function_address(name))
        return engine
    except Exception:  # noqa: BLE001 - any failure means: use the im2col path instead
        return None


_ENGINE = _compile()
#: AVX-512: 512-bit vectors and 32 vector registers (else 256-bit vectors and 16 registers)
WIDE = _ENGINE is not None and "+avx512f" in _host_features().split(",")


def available() -> bool:
    """Whether the tiles compiled (else the convolutions keep to im2col + GEMM)."""
    return _ENGINE is not None


def vectors_per_tile() -> int:
    """How many vectors per channel a convolution tile may take here without spilling its sums."""
    return MAX_VECTORS if WIDE else 3


def channel_vectors_per_tile() -> int:
    """How many vectors of channels a channel tile may take here without spilling its sums
    (TILE_COLUMNS sums per vector, plus the vectors and one broadcast value)."""
    return MAX_CHANNEL_VECTORS if WIDE else 1


@njit(cache=True)
def vector_groups(vectors, most):
    """How many vectors of channels each channel tile takes to cover `vectors`, at most `most`
    each, in tiles of even size (4 vectors as 2 + 2, not 3 + 1)."""
    n_tiles = -(-vectors // most)
    sizes = np.empty(n_tiles, np.int64)
    done = 0
    for i in range(n_tiles):
        sizes[i] = (vectors - done) // (n_tiles - i)
        done += sizes[i]
    return sizes


def padded(count: int, multiple: int) -> int:
    """count rounded up to a multiple."""
    return -(-count // multiple) * multiple


def lanes_for(width: int, dtype) -> int:
    """Lanes per vector for output rows of `width`: 512-bit vectors where the CPU has them, unless a
    row then wastes so many lanes that two 256-bit vectors do as well (rows of 8 floats)."""
    itemsize = np.dtype(dtype).itemsize
    narrow = 32 // itemsize
    if not WIDE:
        return narrow
    wide = 2 * narrow
    per_row_wide, per_row_narrow = -(-width // wide) * wide, -(-width // narrow) * narrow
    return wide if per_row_wide < 1.5 * per_row_narrow else narrow


_SIG = types.void(types.int64, *[types.voidptr] * 3, types.int64, *[types.voidptr] * 4,
                  types.int64, types.int64, types.voidptr, types.int64)
_f32_256 = types.ExternalFunction(_name(4, 256), _SIG)
_f32_512 = types.ExternalFunction(_name(4, 512), _SIG)
_f64_256 = types.ExternalFunction(_name(8, 256), _SIG)
_f64_512 = types.ExternalFunction(_name(8, 512), _SIG)


@njit(cache=True)
def tile(lanes, nv, x, xoff, taps, w, w_off, sums, ooff, dst, ldo, nm, bias, b_off, use_bias):
    """One tile of nv vectors of `lanes` (see the module doc); w[w_off:] holds its (k,
    TILE_CHANNELS) weights, bias[b_off:] its TILE_CHANNELS biases (read even when use_bias is
    False). Arrays of one dtype; xoff, taps and ooff int64."""
    size = x.itemsize
    args = (nv, x.ctypes.data, xoff.ctypes.data, taps.ctypes.data, taps.shape[0],
            w.ctypes.data + w_off * size, sums.ctypes.data, ooff.ctypes.data, dst.ctypes.data, ldo, nm,
            bias.ctypes.data + b_off * size, 1 if use_bias else 0)
    wide = lanes * size == 64
    if size == 8:
        if wide:
            _f64_512(*args)
        else:
            _f64_256(*args)
    elif wide:
        _f32_512(*args)
    else:
        _f32_256(*args)


_CSIG = types.void(types.int64, types.int64, *[types.voidptr] * 2, types.int64, *[types.voidptr] * 3,
                   types.int64)
_c_f32_256 = types.ExternalFunction(_channel_name(4, 256), _CSIG)
_c_f32_512 = types.ExternalFunction(_channel_name(4, 512), _CSIG)
_c_f64_256 = types.ExternalFunction(_channel_name(8, 256), _CSIG)
_c_f64_512 = types.ExternalFunction(_channel_name(8, 512), _CSIG)


@njit(cache=True)
def channel_tile(lanes, mv, steps, step_offsets, a, a_off, lda, x, column_offsets, c_off, out, o_off, ldo):
    """out[o_off + j * ldo + i] += sum over s < steps of
    a[a_off + s * lda + i] * x[column_offsets[c_off + j] + step_offsets[s]]
    for the TILE_COLUMNS columns j and the mv * lanes channels i (steps >= 1). A GEMM microkernel
    whose second operand is read from an image: the sums run in registers (one FMA chain per
    output, s in order) and are added to out once. With the taps as columns and the output positions
    as steps it is the weight gradient (a: the top gradient, positions x channels); with the output
    positions as columns and the taps as steps, a convolution (a: the weights, taps x channels)."""
    size = x.itemsize
    args = (mv, steps, step_offsets.ctypes.data, a.ctypes.data + a_off * size, lda, x.ctypes.data,
            column_offsets.ctypes.data + c_off * 8, out.ctypes.data + o_off * size, ldo)
    wide = lanes * size == 64
    if size == 8:
        if wide:
            _c_f64_512(*args)
        else:
            _c_f64_256(*args)
    elif wide:
        _c_f32_512(*args)
    else:
        _c_f32_256(*args)


def scratch(dtype) -> np.ndarray:
    """A tile's output scratch for dtype, for any of its widths."""
    return np.empty(TILE_CHANNELS * MAX_VECTORS * 64 // np.dtype(dtype).itemsize, dtype)
