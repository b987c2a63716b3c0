//! Which integer kernel runs: the paths, what this machine can run, the
//! best of them, and `CROSSRANK_INT8` to choose another.

use std::sync::OnceLock;

/// Which integer kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Not used: quantized layers dequantize to f32 and run the f32 GEMM.
    Off,
    Scalar,
    Avx2,
    Avx512Vnni,
    Neon,
    Dotprod,
    I8mm,
    Simd128,
}

impl Path {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Off => "off (dequantize + f32 GEMM)",
            Path::Scalar => "scalar",
            Path::Avx2 => "AVX2 (vpmaddwd)",
            Path::Avx512Vnni => "AVX-512 VNNI (vpdpwssd; int8: vpdpbusd)",
            Path::Neon => "aarch64 NEON (smlal)",
            Path::Dotprod => "aarch64 dot product (sdot/udot)",
            Path::I8mm => "aarch64 i8mm (smmla/usmmla)",
            Path::Simd128 => "wasm SIMD128 (i32x4.dot_i16x8_s)",
        }
    }

    /// Whether this machine can run the path.
    pub(crate) fn available(self) -> bool {
        match self {
            Path::Off | Path::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => super::x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512Vnni => super::x86::has_avx512_vnni(),
            #[cfg(target_arch = "aarch64")]
            Path::Neon => super::aarch64::has_neon(),
            #[cfg(target_arch = "aarch64")]
            Path::Dotprod => super::aarch64::has_dotprod(),
            #[cfg(target_arch = "aarch64")]
            Path::I8mm => super::aarch64::has_i8mm(),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Path::Simd128 => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest path this machine has (the scalar code is slower than
    /// dequantize + f32 SIMD GEMM, so without a SIMD path the answer is
    /// `Off`).
    ///
    /// On wasm32 that is SIMD128, which beats dequantize + f32 GEMM only
    /// when this crate is compiled at opt-level 3 (Cargo.toml's wasm
    /// profiles say why; the README's browser rows give the speeds).
    fn best() -> Path {
        [Path::Avx512Vnni, Path::Avx2, Path::I8mm, Path::Dotprod, Path::Neon, Path::Simd128]
            .into_iter()
            .find(|p| p.available())
            .unwrap_or(Path::Off)
    }

    /// The path a `CROSSRANK_INT8` value names (case-insensitive), if any.
    pub(crate) fn from_name(name: &str) -> Option<Path> {
        Some(match name.to_ascii_lowercase().as_str() {
            "off" | "0" | "f32" => Path::Off,
            "scalar" => Path::Scalar,
            "avx2" => Path::Avx2,
            "avx512" | "vnni" | "avx512vnni" => Path::Avx512Vnni,
            "neon" | "smlal" => Path::Neon,
            "dotprod" | "sdot" => Path::Dotprod,
            "i8mm" | "smmla" => Path::I8mm,
            "simd128" => Path::Simd128,
            _ => return None,
        })
    }
}

/// The integer path quantized linear layers use on this machine:
/// `CROSSRANK_INT8` if set to an available path, else the best one.
pub(crate) fn path() -> Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    *PATH.get_or_init(|| {
        let wanted = std::env::var("CROSSRANK_INT8").ok().map(|v| {
            let p = Path::from_name(&v);
            if p.is_none() {
                tracing::warn!("CROSSRANK_INT8={v:?} is not one of off, scalar, avx2, avx512, neon, dotprod, i8mm, simd128; ignored");
            }
            p
        });
        match wanted.flatten() {
            Some(p) if p.available() => p,
            Some(p) => {
                tracing::warn!(
                    "CROSSRANK_INT8={:?}: {} is not available here; using {}",
                    std::env::var("CROSSRANK_INT8").unwrap_or_default(),
                    p.name(),
                    Path::best().name()
                );
                Path::best()
            }
            None => Path::best(),
        }
    })
}
