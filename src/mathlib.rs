//! The four functions of the C maths library that the binary calls
//! (`log`, `log2`, `log2f`, `pow`: the brotli encoder's cost estimates,
//! tokio's and indicatif's rates, SQLite's full-text ranking, the NTP
//! precision), defined here so that the link does not need `libm.so.6`.
//! A library loaded is a library mapped and relocated on every start,
//! `ferry --version` included: about 0.1 ms of a 1 ms start here, for
//! functions no client command calls. They are the `libm` crate's, the
//! Rust port of musl's, which the compiler's own runtime uses on targets
//! without a C maths library; the names are claimed with `no_mangle`, so
//! the linker finds them in the binary before `-lm` and (linking
//! `--as-needed`) leaves the library out.

#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}

#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn log2(x: f64) -> f64 {
    libm::log2(x)
}

#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn log2f(x: f32) -> f32 {
    libm::log2f(x)
}

#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
