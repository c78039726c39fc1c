# A CMake toolchain file that only turns on unity builds. `.cargo/config.toml` hands it to the
# `cmake` crate, which builds the bundled HiGHS solver for `highs-sys`: its 233 C++ sources are
# compiled in 28 batched translation units instead of one by one, so the headers are parsed
# 28 times, not 233. Measured on a 2-core machine (2026-12-03): HiGHS's build 651 s -> 206 s,
# the solver's results unchanged (the LP tests, `bench lp`). The compilers stay CMake's
# defaults, as without a toolchain file.
set(CMAKE_UNITY_BUILD ON)
