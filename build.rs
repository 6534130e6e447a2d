//! Link options of the `tokenledger` binary (nothing is generated).
//!
//! **Packed relative relocations** (`-z pack-relative-relocs`, DT_RELR): a position-independent
//! executable carries one 24-byte `R_X86_64_RELATIVE` entry for every pointer in its read-only
//! data (vtables, string tables); the dynamic loader reads them all at every start, so their
//! pages count in every command's resident memory. Ours holds ~211,000 of them (5.1 MB of
//! `.rela.dyn`; 4.2 MB before the Delta kernel and object_store came in); packed they take
//! 58 KB, and the chargeback's peak RSS drops from 72.9 to 68.0 MiB (page cache dropped first;
//! `bench/compare.py`), `--version` from 13.2 to 8.2 MiB (figures in the README). Arch Linux puts the same flag in its
//! default LDFLAGS (its RFC 0023).
//!
//! A binary linked so needs glibc 2.36 or newer (the linker adds a `GLIBC_ABI_DT_RELR` version
//! need, so an older loader refuses it by name rather than crashing), hence only when building
//! for the machine that builds, on x86_64 Linux with glibc (the linker is rust-lld there, which
//! knows the flag) and a glibc that has it. Anywhere else the binary links as before.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target == "x86_64-unknown-linux-gnu" && host == target && host_glibc_has_relr() {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc (the one a native build links against) is 2.36 or newer.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn host_glibc_has_relr() -> bool {
    unsafe extern "C" {
        fn gnu_get_libc_version() -> *const std::ffi::c_char;
    }
    // SAFETY: glibc returns a pointer to a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
    let mut parts = v.to_str().unwrap_or("0.0").split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (2, 36)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn host_glibc_has_relr() -> bool {
    false
}
