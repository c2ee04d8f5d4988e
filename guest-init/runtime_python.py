# SPDX-License-Identifier: Apache-2.0
#
# The python run-code driver: guest-init/runtime.c embeds this file and
# starts the image's interpreter as `python3 -c <this text>`, once per
# sandbox.  It runs code blocks one after another in one namespace, the
# __main__ module's, as a notebook kernel does: a variable one block sets
# is there for the next.
#
#   fd 3  blocks of code: a little-endian u32 length, then that many bytes
#         of source (UTF-8 unless a coding cookie says otherwise); the
#         length's top bit (RUNTIME_F_RESEED) asks for random.seed() first
#   fd 4  after each block, once stdout and stderr are flushed: 8 bytes,
#         u32 0 (done) and u32 status, both little-endian
#
# Status: 0; 1 for an uncaught exception (its traceback on stderr, without
# the driver's own frames); n for SystemExit(n), after which the namespace
# lives on; 0x100 | SIGINT for KeyboardInterrupt.  A block whose last
# statement is an expression prints its value as the interactive
# interpreter does (sys.displayhook).
#
# SIGINT interrupts the running block.  Between blocks it is kept for the
# next block only if that block is already on its way (being read, or
# waiting on fd 3): the timeout of a call that came just before its code
# started.  Otherwise it is a late one (a timeout that raced its block's
# end) and is ignored, so that it neither kills the driver nor hits the
# next call.  The interpreter starts with SIGINT blocked: one sent while
# python starts up waits, and is for the first block.


def _msvmm_driver():
    import ast
    import linecache
    import os
    import select
    import signal
    import sys
    import traceback

    code_fd, status_fd = 3, 4
    driver_file = sys._getframe().f_code.co_filename
    ns = sys.modules['__main__'].__dict__
    # The user's namespace starts as a fresh interpreter's would.
    del ns['_msvmm_driver']
    running = [False]   # a block's code runs
    reading = [False]   # a block's header has been read, its source not yet run
    pending = [False]   # a SIGINT for the next block to run

    def on_sigint(signum, frame):
        if running[0]:
            raise KeyboardInterrupt
        if reading[0] or select.select([code_fd], [], [], 0)[0]:
            pending[0] = True

    def read_exact(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = os.read(code_fd, n - len(buf))
            if not chunk:
                os._exit(0)  # no writer left: no more code will come
            buf += chunk
        return bytes(buf)

    def print_exception(e):
        # The driver's frames (the exec at the top, on_sigint at the
        # bottom) are not the user's: leave them out, in chained ones too.
        te = traceback.TracebackException(type(e), e, e.__traceback__)
        todo = [te]
        while todo:
            t = todo.pop()
            t.stack = traceback.StackSummary.from_list(
                [f for f in t.stack if f.filename != driver_file])
            todo += [c for c in (t.__cause__, t.__context__) if c is not None]
        sys.stderr.write(''.join(te.format()))

    def exit_status(code):
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xff
        print(code, file=sys.stderr)
        return 1

    def run(source, name):
        # Tracebacks show the lines of earlier blocks too.
        text = source.decode('utf-8', 'replace')
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        try:
            tree = ast.parse(source, name, 'exec')
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = compile(ast.Expression(tree.body.pop().value), name, 'eval')
            body = compile(tree, name, 'exec')
        except (SyntaxError, ValueError) as e:
            # As python reports a script that does not compile: no traceback header.
            traceback.print_exception(type(e), e, None)
            return 1
        try:
            running[0], reading[0] = True, False
            try:
                if pending[0]:
                    pending[0] = False
                    raise KeyboardInterrupt
                exec(body, ns)
                if last is not None:
                    sys.displayhook(eval(last, ns))
            finally:
                running[0] = False
            return 0
        except SystemExit as e:
            return exit_status(e.code)
        except KeyboardInterrupt as e:
            print_exception(e)
            return 0x100 | signal.SIGINT
        except BaseException as e:
            print_exception(e)
            return 1

    def flush():
        for f in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                f.flush()
            except Exception:
                pass

    os.set_inheritable(code_fd, False)
    os.set_inheritable(status_fd, False)
    signal.signal(signal.SIGINT, on_sigint)
    if signal.SIGINT in signal.sigpending():
        signal.sigwait({signal.SIGINT})
        pending[0] = True
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # stdout is a FIFO: without this, prints would arrive only at the block's end.
    sys.stdout.reconfigure(line_buffering=True)
    sys.argv = ['']
    n = 0
    while True:
        length = int.from_bytes(read_exact(4), 'little')
        if length & 0x80000000:
            # The first block after a restore: every restore of a snapshot
            # would otherwise draw the same numbers (the kernel's generator
            # was reseeded just before).
            # One not imported yet seeds itself from the kernel when it is.
            length &= 0x7fffffff
            if 'random' in sys.modules:
                sys.modules['random'].seed()
        reading[0] = True
        n += 1
        status = run(read_exact(length), '<code-%d>' % n)
        # A SIGINT that came for this block is spent with it.
        reading[0] = pending[0] = False
        flush()
        os.write(status_fd, (0).to_bytes(4, 'little') + status.to_bytes(4, 'little'))


_msvmm_driver()
