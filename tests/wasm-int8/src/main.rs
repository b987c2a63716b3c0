//! See Cargo.toml. The kernel module is included by path, so this checks
//! the very file crossrank compiles.
#![allow(dead_code, unexpected_cfgs)]
#[path = "../../../crates/crossrank/src/kernels/int8/mod.rs"]
mod int8;
use int8::*;

fn main() {
    let mut s: u64 = 12345;
    let mut rnd = move || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 33) as u32 };
    assert!(Path::Simd128.available(), "built without simd128");
    let mut checked = 0;
    for (m, n, k) in [(1, 16, 32), (5, 17, 64), (7, 40, 160), (13, 96, 1088), (50, 33, 544), (9, 8, 32), (4, 9, 48)] {
        for (bits, block) in [(8u32, 32usize), (8, 16), (4, 32), (4, 16)] {
            if k % block != 0 { continue; }
            let per_word = 32 / bits as usize;
            let words: Vec<u32> = (0..n * k / per_word).map(|_| {
                let mut w = 0u32;
                for i in 0..per_word { let f = 1 + rnd() % ((1 << bits) - 1); w |= f << (i as u32 * bits); }
                w
            }).collect();
            let scales: Vec<f32> = (0..n * k / block).map(|_| (rnd() % 1000) as f32 * 1e-4).collect();
            let x: Vec<f32> = (0..m * k).map(|i| if i % 37 == 0 { 0.0 } else { (rnd() % 20001) as f32 / 1e4 - 1.0 } * if i % 53 == 0 { 9.0 } else { 1.0 }).collect();
            let bias: Vec<f32> = (0..n).map(|_| (rnd() % 100) as f32 * 0.01).collect();
            let w = Weights { n, k, bits, block, words: &words, scales: &scales };
            let want = linear(Path::Scalar, &x, m, &w, Some(&bias)).unwrap();
            let got = linear(Path::Simd128, &x, m, &w, Some(&bias)).unwrap();
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), e.to_bits(), "m {m} n {n} k {k} q{bits}/{block} at {i}: {g} vs {e}");
            }
            checked += 1;
        }
    }
    // Speed, one thread: bge-reranker-base's q/k/v shape at 256 rows.
    let (m, n, k) = (256, 2304, 768);
    let words: Vec<u32> = (0..n * k / 4).map(|_| rnd() | 0x0101_0101).collect();
    let scales: Vec<f32> = (0..n * k / 32).map(|_| 1e-3).collect();
    let x: Vec<f32> = (0..m * k).map(|_| (rnd() % 2001) as f32 / 1e3 - 1.0).collect();
    let w = Weights { n, k, bits: 8, block: 32, words: &words, scales: &scales };
    let t = std::time::Instant::now();
    let reps = 3;
    for _ in 0..reps { std::hint::black_box(linear(Path::Simd128, &x, m, &w, None)); }
    let sec = t.elapsed().as_secs_f64() / reps as f64;
    println!("simd128: {checked} shapes bit for bit equal to the scalar reference; {:.1} GMAC/s at m {m} n {n} k {k}", (m * n * k) as f64 / sec / 1e9);
}
