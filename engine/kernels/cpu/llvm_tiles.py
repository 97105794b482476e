"""Machinery for kernels written as LLVM IR: a builder for tile functions over explicit SIMD
vectors, a dispatcher that exports them, and compilation for the host CPU with the functions
registered as symbols, so numba kernels call them through ExternalFunction and stay cacheable on
disk (as engine.kernels.cpu.blas binds the BLAS).

Why: numba has no SIMD vector type, and LLVM does not keep a tile of accumulators in registers
across a reduction loop written over arrays. Used by engine.kernels.cpu.direct_tile (convolution)
and engine.kernels.cpu.pool_tile (MAX pooling).
"""

from __future__ import annotations

from collections.abc import Callable


class TileFunction:
    """One tile function being generated: its vector type and the pieces both tiles are made of."""

    def __init__(self, module, itemsize: int, bits: int, name: str, args: str) -> None:
        """A function `name` of vectors of `bits` over floats of `itemsize` bytes, internal to the
        module (build_dispatch exports it); args: one letter per argument, p a pointer to floats,
        q a pointer to int64, i an int64."""
        from llvmlite import ir

        self.ir = ir
        real = ir.DoubleType() if itemsize == 8 else ir.FloatType()
        self.itemsize, self.lanes = itemsize, bits // (8 * itemsize)
        self.vec = ir.VectorType(real, self.lanes)
        self.i64 = ir.IntType(64)
        fma_name = f"llvm.fma.v{self.lanes}{'f64' if itemsize == 8 else 'f32'}"
        self.fma = module.globals.get(fma_name) or ir.Function(
            module, ir.FunctionType(self.vec, [self.vec] * 3), fma_name)
        kinds = {"p": real.as_pointer(), "q": self.i64.as_pointer(), "i": self.i64}
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [kinds[c] for c in args]), name)
        self.fn.linkage = "internal"
        self.entry, self.loop, self.done = (self.fn.append_basic_block(n) for n in ("entry", "loop", "done"))
        self.b = ir.IRBuilder(self.entry)

    def export(self) -> str:
        """Make the function visible outside the module (to register it as a symbol); its name."""
        self.fn.linkage = ""
        return self.fn.name

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

    def splat(self, scalar, vector_type=None):
        """A vector (of vector_type, else the tile's) of `scalar` in every lane."""
        ir = self.ir
        vector_type = vector_type or self.vec
        undef = ir.Constant(vector_type, ir.Undefined)
        mask = ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count), [0] * vector_type.count)
        return self.b.shuffle_vector(self.b.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0)),
                                     undef, mask)

    def zeros(self):
        return self.ir.Constant(self.vec, [0.0] * self.lanes)

    def reduction(self, count, initial, step):
        """Values carried in registers over k = 0 .. count - 1 (count >= 1): initial is a list of
        lists of constants, step(k, values) gives the next values (same shape and types). Leaves the
        builder in the done block; the final values."""
        b = self.b
        b.branch(self.loop)
        b.position_at_end(self.loop)
        k = b.phi(self.i64)
        k.add_incoming(self.const(0), self.entry)
        values = [[b.phi(start.type) for start in row] for row in initial]
        for row, starts in zip(values, initial, strict=True):
            for value, start in zip(row, starts, strict=True):
                value.add_incoming(start, self.entry)
        stepped = step(k, values)
        k_next = b.add(k, self.const(1))
        k.add_incoming(k_next, self.loop)
        for row, new_row in zip(values, stepped, strict=True):
            for value, new in zip(row, new_row, strict=True):
                value.add_incoming(new, self.loop)
        b.cbranch(b.icmp_signed("<", k_next, count), self.loop, self.done)
        b.position_at_end(self.done)
        return stepped


def build_dispatch(module, name: str, tiles) -> None:
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


def host_features() -> str:
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_features().flatten()


def host_has_avx512() -> bool:
    """Whether this CPU has AVX-512: 512-bit vectors and 32 vector registers."""
    return "+avx512f" in host_features().split(",")


def compile_module(name: str, build: Callable[[object], list[str]]):
    """An LLVM module `name` filled by build(module), which returns the names of the functions to
    export, compiled for this CPU and its functions registered as symbols that numba's
    ExternalFunction finds; the execution engine (keep it alive), or None if anything failed."""
    try:
        import llvmlite.binding as llvm
        from llvmlite import ir

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = ir.Module(name)
        module.triple = llvm.get_process_triple()
        exported = build(module)
        # 512-bit vectors stay whole even where LLVM's tuning for the CPU prefers 256-bit ones
        text = str(module).replace(") {", ') "min-legal-vector-width"="512" {')
        parsed = llvm.parse_assembly(text)
        parsed.verify()
        machine = llvm.Target.from_triple(module.triple).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=host_features(), opt=3)
        engine = llvm.create_mcjit_compiler(parsed, machine)
        engine.finalize_object()
        for symbol in exported:
            llvm.add_symbol(symbol, engine.get_function_address(symbol))
        return engine
    except Exception:  # noqa: BLE001 - any failure means: the callers keep to their generic kernels
        return None
