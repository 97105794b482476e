"""The register-tiled inner loops of the direct convolution, generated as LLVM IR
(engine.kernels.cpu.llvm_tiles). Each step of a tile's loop is a handful of loads and a dozen or
more FMAs on registers, like a GEMM microkernel, but it reads its operand straight from the
zero-bordered image instead of a column matrix.

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

from engine.kernels.cpu.llvm_tiles import TileFunction, build_dispatch, compile_module, host_has_avx512

TILE_CHANNELS = 4
#: the most vectors per channel a tile computes (32 vector registers: 24 sums, 6 inputs, 1 weight)
MAX_VECTORS = 6
#: bytes of a row tile's output scratch, for any of its widths (64-byte vectors at most)
SCRATCH_BYTES = TILE_CHANNELS * MAX_VECTORS * 64
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


def _build_tile(module, itemsize: int, bits: int, nv: int):
    """The convolution tile for exactly nv vectors of `bits` each (see the module doc)."""
    t = TileFunction(module, itemsize, bits, _name(itemsize, bits, nv), "pqqippqpiipi")
    x, xoff, taps, k_count, w, sums, ooff, dst, ldo, nm, bias, use_bias = t.fn.args
    b, lanes = t.b, t.lanes
    bases = [b.gep(x, [b.load(t.element(xoff, v))]) for v in range(nv)]

    def step(k, acc):
        tap = b.load(t.element(taps, k))
        xs = [t.load_vector(t.element(base, tap)) for base in bases]
        w_row = t.element(w, b.mul(k, t.const(TILE_CHANNELS)))
        return [[b.call(t.fma, [xs[v], wv, acc[i][v]]) for v in range(nv)]
                for i, wv in enumerate(t.splat(b.load(t.element(w_row, i))) for i in range(TILE_CHANNELS))]

    summed = t.reduction(k_count, [[t.zeros()] * nv] * TILE_CHANNELS, step)
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
    t = TileFunction(module, itemsize, bits, _channel_name(itemsize, bits, mv), "iqpipqpi")
    steps, step_offsets, a, lda, x, column_offsets, out, ldo = t.fn.args
    b, lanes = t.b, t.lanes
    bases = [b.gep(x, [b.load(t.element(column_offsets, j))]) for j in range(TILE_COLUMNS)]

    def step(s, acc):
        off = b.load(t.element(step_offsets, s))
        a_row = t.element(a, b.mul(s, lda))
        a_vecs = [t.load_vector(t.element(a_row, v * lanes)) for v in range(mv)]
        return [[b.call(t.fma, [a_vecs[v], xv, acc[j][v]]) for v in range(mv)]
                for j, xv in enumerate(t.splat(b.load(t.element(base, off))) for base in bases)]

    summed = t.reduction(steps, [[t.zeros()] * mv] * TILE_COLUMNS, step)
    for j in range(TILE_COLUMNS):
        row = t.element(out, b.mul(t.const(j), ldo))
        for v in range(mv):
            slot = t.vector_at(t.element(row, v * lanes))
            b.store(b.fadd(b.load(slot, align=itemsize), summed[j][v]), slot, align=itemsize)
    b.ret_void()
    return t.fn


def _build(module) -> list[str]:
    """Every tile into module; the names to export."""
    names = []
    for itemsize in (4, 8):
        for bits in WIDTHS:
            build_dispatch(module, _name(itemsize, bits),
                           [_build_tile(module, itemsize, bits, nv) for nv in range(1, MAX_VECTORS + 1)])
            build_dispatch(module, _channel_name(itemsize, bits),
                           [_build_channel_tile(module, itemsize, bits, mv)
                            for mv in range(1, MAX_CHANNEL_VECTORS + 1)])
            names += [_name(itemsize, bits), _channel_name(itemsize, bits)]
    return names


_ENGINE = compile_module("brewnet_direct_tiles", _build)
#: AVX-512: 512-bit vectors and 32 vector registers (else 256-bit vectors and 16 registers)
WIDE = _ENGINE is not None and host_has_avx512()


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
    """Lanes per vector for `width` values in a row (outputs along a row, or channels): 512-bit
    vectors where the CPU has them, unless they then waste so many lanes that 256-bit vectors do
    as well (rows of 8 floats)."""
    itemsize = np.dtype(dtype).itemsize
    narrow = 32 // itemsize
    if not WIDE:
        return narrow
    return 2 * narrow if padded(width, 2 * narrow) < 1.5 * padded(width, narrow) else narrow


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
    return np.empty(SCRATCH_BYTES // np.dtype(dtype).itemsize, dtype)
