# A CMake toolchain file that only turns on unity builds. `.cargo/config.toml` hands it to the
# `cmake` crate, which builds the bundled HiGHS solver for `highs-sys`: its library's C and C++
# sources are compiled in 30 batched translation units (25 C++, 5 C; CMake's default batches
# of 8) instead of one by one, so each header is parsed once per batch, not once per file. Measured on a 2-core machine (2026-12-03): HiGHS's build 651 s -> 389 s
# inside a cold release build (206 s alone). The solver is the same: the LP tests pass, and
# APRNN's 3x100 fog LP gives the same optimum (3.8665166201504597) in 26.3 s against 28.4 s
# for PyPI's highspy 1.16.0 on the same file and machine (docs/lp.md). The compilers stay
# CMake's defaults, as without a toolchain file.
set(CMAKE_UNITY_BUILD ON)
