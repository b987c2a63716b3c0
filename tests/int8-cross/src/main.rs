//! See Cargo.toml. The kernel module is included by path, so this checks
//! the very file crossrank compiles. Arguments: the SIMD paths this CPU
//! must have (checked, each against the scalar reference) and, first, the
//! one `path()` must pick — e.g. `i8mm i8mm dotprod neon`.
#![allow(dead_code, unused_imports, unexpected_cfgs)]
#[path = "../../../crates/crossrank/src/kernels/int8/mod.rs"]
mod int8;
use int8::*;

const ALL: [Path; 6] = [Path::Avx2, Path::Avx512Vnni, Path::Neon, Path::Dotprod, Path::I8mm, Path::Simd128];

fn by_name(s: &str) -> Path {
    Path::from_name(s).unwrap_or_else(|| panic!("unknown path {s:?}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(!args.is_empty(), "usage: int8-cross PICKED [PATH...]");
    let picked = by_name(&args[0]);
    let wanted: Vec<Path> = args[1..].iter().map(|s| by_name(s)).collect();
    for p in ALL {
        assert_eq!(p.available(), wanted.contains(&p), "{} available: {}", p.name(), p.available());
    }
    assert_eq!(path(), picked, "picked {} ", path().name());

    let mut s: u64 = 12345;
    let mut rnd = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let mut checked = 0;
    for (m, n, k) in [(1, 16, 32), (5, 17, 64), (7, 40, 160), (13, 96, 1088), (50, 33, 544), (9, 8, 32), (4, 9, 48)] {
        for (bits, block) in [(8u32, 32usize), (8, 16), (4, 32), (4, 16)] {
            if k % block != 0 {
                continue;
            }
            let per_word = 32 / bits as usize;
            let words: Vec<u32> = (0..n * k / per_word)
                .map(|_| {
                    let mut w = 0u32;
                    for i in 0..per_word {
                        let f = 1 + rnd() % ((1 << bits) - 1);
                        w |= f << (i as u32 * bits);
                    }
                    w
                })
                .collect();
            let scales: Vec<f32> = (0..n * k / block).map(|_| (rnd() % 1000) as f32 * 1e-4).collect();
            // Zeros, ±1 (full-scale activations: the extreme digits), outliers.
            let x: Vec<f32> = (0..m * k)
                .map(|i| match i % 37 {
                    0 => 0.0,
                    1 => -1.0,
                    2 => 1.0,
                    _ => ((rnd() % 20001) as f32 / 1e4 - 1.0) * if i % 53 == 0 { 9.0 } else { 1.0 },
                })
                .collect();
            let bias: Vec<f32> = (0..n).map(|_| (rnd() % 100) as f32 * 0.01).collect();
            let w = QuantWeights { n, k, bits, block, words: &words, scales: &scales };
            // q8/q4 (16-bit activations) and, for q8 weights, int8 (8-bit).
            for qmax in [QMAX16, QMAX8].into_iter().filter(|&q| q == QMAX16 || bits == 8) {
                let want = linear(Path::Scalar, &x, m, &w, Some(&bias), qmax).unwrap();
                for &p in &wanted {
                    let got = linear(p, &x, m, &w, Some(&bias), qmax).unwrap();
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), e.to_bits(), "{} m {m} n {n} k {k} q{bits}/{block} acts ±{qmax} at {i}: {g} vs {e}", p.name());
                    }
                    let panels = Panels::new(p, &w, qmax).expect("a supported shape");
                    assert_eq!(panels.linear(&x, m, Some(&bias)), got, "{}: panels built once", p.name());
                    assert_eq!(panels.stored(), (words.clone(), scales.clone()), "{}: panels give back the matrix", p.name());
                    checked += 1;
                }
            }
        }
    }
    let names: Vec<_> = wanted.iter().map(|p| p.name()).collect();
    println!("{names:?}: {checked} shape × path runs bit for bit equal to the scalar reference; picked: {}", path().name());
    if std::env::var_os("INT8_SPEED").is_some() {
        speed(&wanted, &mut rnd);
    }
}

/// Single-threaded kernel speed on bge-reranker-base's q/k/v shape at 256
/// rows, or `INT8_M` (for tuning; under an emulator it says nothing).
fn speed(paths: &[Path], rnd: &mut impl FnMut() -> u32) {
    let m = std::env::var("INT8_M").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let (n, k) = (2304, 768);
    let words: Vec<u32> = (0..n * k / 4).map(|_| rnd() | 0x0101_0101).collect();
    let scales: Vec<f32> = (0..n * k / 32).map(|_| 1e-3).collect();
    let x: Vec<f32> = (0..m * k).map(|_| (rnd() % 2001) as f32 / 1e3 - 1.0).collect();
    let w = QuantWeights { n, k, bits: 8, block: 32, words: &words, scales: &scales };
    for &p in paths {
        let mut best = f64::MAX;
        for _ in 0..10 {
            let t = std::time::Instant::now();
            std::hint::black_box(linear(p, &x, m, &w, None, QMAX16));
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{}: {:.1} GMAC/s at m {m} n {n} k {k}", p.name(), (m * n * k) as f64 / best / 1e9);
    }
}
