"""Flush-to-zero for the kernels' floating-point work, as TensorFlow's CPU kernels run (private).

TensorFlow runs its CPU kernels with subnormal numbers flushed to zero (``FTZ``) and read as
zero (``DAZ``): its threads enter ``port::ScopedFlushDenormal``. Checked against TF 2.21 here:
``exp(-100)`` is 0 in float32, and a matmul whose products are all 1e-40 gives 0 where numpy
gives 5e-38. Besides fidelity it matters for speed: on Intel cores an operation with a
subnormal operand or result takes a microcode assist (~100+ cycles). A sampled-softmax step of
a head that has grown confident is full of them (probabilities near 1e-38 times 1/B, and
their products in the backward matrix products), so without the flush such a head slows
down several times as it trains, while with it the step time stays flat (and the trained
weights were bit-identical either way: docs/performance.md#subnormal-numbers).

:func:`ftz_enter` sets FTZ and DAZ in this thread's MXCSR and returns the previous value;
:func:`ftz_exit` restores it. A parallel kernel calls both in each task (every worker thread has
its own MXCSR, and the caller's thread runs tasks too, so the mode is always restored: numpy
and the rest of the process never see it). BLAS calls made inside such a task inherit the
mode. Only the two bits are changed: rounding and exception masks stay as they were.

Rule: never hold the mode around code that *starts* a parallel region. A thread inherits the
MXCSR of the thread that creates it, and Numba creates its worker threads at the first parallel
region; started under FTZ they would keep it for good (``tests/test_fpenv.py`` checks this in a
fresh process). Serial floating-point phases take their own enter/exit instead. The kernels
raise nothing between the two calls (an out-of-bounds ``IndexError`` under
``NUMBA_BOUNDSCHECK=1``, i.e. a bug, would leave that thread in FTZ mode).

On machines other than x86-64 both are no-ops (ARM cores generally process subnormals without
a penalty); the kernels' explicit :func:`~fastsampled._vmath.flush_to` of the softmax gradient
keeps the result the same there up to the products' subnormal rounding.
"""
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jitcache import guard_caches

FTZ_DAZ = np.uint32(0x8040)     # MXCSR bit 15 (flush to zero) | bit 6 (denormals are zero)
X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_call(builder, name, ptr):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(ptr, ir.IntType(8).as_pointer())])


@intrinsic
def _stmxcsr(typingctx):
    def codegen(context, builder, sig, args):
        ptr = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", ptr)
        return builder.load(ptr)
    return types.uint32(), codegen


@intrinsic
def _ldmxcsr(typingctx, value):
    def codegen(context, builder, sig, args):
        ptr = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(args[0], ptr)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
        return context.get_dummy_value()
    return types.void(types.uint32), codegen


if X86_64:
    @njit(cache=True)
    def ftz_enter():
        """Set FTZ and DAZ in this thread's MXCSR; return its previous value."""
        old = _stmxcsr()
        _ldmxcsr(old | FTZ_DAZ)
        return old

    @njit(cache=True)
    def ftz_exit(old):
        """Restore this thread's MXCSR to ``old`` (from :func:`ftz_enter`)."""
        _ldmxcsr(old)

    @njit(cache=True)
    def mxcsr():
        """This thread's MXCSR (for tests)."""
        return _stmxcsr()
else:
    @njit(cache=True)
    def ftz_enter():
        return np.uint32(0)

    @njit(cache=True)
    def ftz_exit(old):
        pass

    @njit(cache=True)
    def mxcsr():
        return np.uint32(0)


guard_caches(globals())     # cache saves take a lock: _jitcache.py
