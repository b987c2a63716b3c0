use super::acts::to_digits;
use super::pack::pack_i8;
use super::*;

/// Deterministic values with a few outliers (as transformer activations
/// have), some exact zeros and a whole zero block.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = ((s >> 33) as f64 / (1u64 << 31) as f64) as f32 * 2.0 - 1.0;
            if (64..96).contains(&i) {
                0.0
            } else if i % 53 == 0 {
                u * 9.0
            } else if i % 11 == 0 {
                0.0
            } else {
                u
            }
        })
        .collect()
}

/// A stored `[n, k]` matrix: random fields (never the unused 0) and scales.
struct Host {
    n: usize,
    k: usize,
    bits: u32,
    block: usize,
    packed: Vec<u32>,
    scales: Vec<f32>,
}

fn host(n: usize, k: usize, bits: u32, block: usize, seed: u64) -> Host {
    let v = values(n * k + n * k / block, seed);
    let per_word = 32 / bits as usize;
    let top = (1u32 << bits) - 1;
    let mut packed = vec![0u32; n * k / per_word];
    for (i, x) in v[..n * k].iter().enumerate() {
        let field = 1 + ((x.abs() * 1000.0) as u32 + i as u32) % top;
        packed[i / per_word] |= field << ((i % per_word) as u32 * bits);
    }
    let scales = v[n * k..].iter().map(|x| (x.abs() + 0.01) * 0.01).collect();
    Host { n, k, bits, block, packed, scales }
}

fn view(q: &Host) -> QuantWeights<'_> {
    QuantWeights { n: q.n, k: q.k, bits: q.bits, block: q.block, words: &q.packed, scales: &q.scales }
}

const PATHS: [Path; 7] = [Path::Scalar, Path::Avx2, Path::Avx512Vnni, Path::Neon, Path::Dotprod, Path::I8mm, Path::Simd128];

/// Every SIMD path available here gives the reference's outputs bit for
/// bit: tile edges in rows and columns, several K chunks, both blocks and
/// both widths.
#[test]
fn every_path_equals_the_reference_bit_for_bit() {
    let mut ran = vec![];
    for path in PATHS.into_iter().filter(|p| p.available()) {
        ran.push(path.name());
        for (m, n, k) in [(1, 16, 32), (5, 17, 64), (7, 40, 160), (13, 96, 1088), (50, 33, 544), (64, 64, 2048)] {
            for (bits, block) in [(8, 32), (8, 16), (4, 32), (4, 16)] {
                let q = host(n, k, bits, block, (m * n + k) as u64 + bits as u64);
                let w = view(&q);
                let x = values(m * k, 7 + m as u64);
                let want = reference(&quantize_acts(&x, m, k, block), &w);
                let bias = values(n, 99);
                let got = linear(path, &x, m, &w, Some(&bias), QMAX16).expect("a supported shape");
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), (w + bias[i % n]).to_bits(), "{path:?} m {m} n {n} k {k} q{bits}/{block} at {i}: {g} vs {w}");
                }
                if path != Path::Scalar {
                    // Panels built once (as a model's q8 layers are at load)
                    // are reused, and give back the stored matrix.
                    let p = Panels::new(path, &w, QMAX16).expect("a supported shape");
                    assert_eq!(p.linear(&x, m, Some(&bias)), got);
                    assert_eq!(p.linear(&x, m, Some(&bias)), got);
                    assert!(p.stored() == (q.packed.clone(), q.scales.clone()), "{path:?} q{bits}: panels give back the stored matrix");
                }
            }
        }
    }
    eprintln!("int8 paths checked: {ran:?}; in use: {}", path().name());
    assert!(path() == Path::Off || ran.contains(&path().name()), "the path in use was not checked");
    #[cfg(target_arch = "x86_64")]
    assert!(!std::is_x86_feature_detected!("avx2") || ran.contains(&Path::Avx2.name()));
}

/// 8-bit activations (`int8`): every SIMD path available here, from
/// panels built once, gives the reference's outputs on activations
/// quantized to ±127 bit for bit — full-scale activations and weights
/// included (the AVX2 kernel's `vpmaddubsw` pairs at their largest) — and
/// the panels give back the stored words and scales exactly.
#[test]
fn int8_paths_equal_the_reference_bit_for_bit() {
    let mut ran = vec![];
    for path in PATHS.into_iter().filter(|p| *p != Path::Scalar && p.available()) {
        ran.push(path.name());
        for (m, n, k) in [(1, 16, 32), (5, 17, 64), (7, 40, 160), (13, 96, 1088), (50, 33, 544), (64, 64, 2048)] {
            for block in [32, 16] {
                let mut q = host(n, k, 8, block, (m * n + k) as u64);
                // Row 0: every weight ±127 (fields 1 and 255).
                for (i, word) in q.packed[..k / 4].iter_mut().enumerate() {
                    *word = if i % 3 == 0 { 0x01ff_01ff } else { 0xffff_ffff };
                }
                let w = view(&q);
                let mut x = values(m * k, 7 + m as u64);
                // Row 0: full-scale activations of both signs (±127 after quantization).
                for (i, v) in x[..k].iter_mut().enumerate() {
                    *v = if i % 5 == 0 { -2.0 } else { 2.0 };
                }
                let bias = values(n, 99);
                let want = linear(Path::Scalar, &x, m, &w, Some(&bias), QMAX8).unwrap();
                let p = Panels::new(path, &w, QMAX8).expect("a q8 shape on an available path");
                let got = p.linear(&x, m, Some(&bias));
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), e.to_bits(), "{path:?} int8 m {m} n {n} k {k} block {block} at {i}: {g} vs {e}");
                }
                assert_eq!(linear(path, &x, m, &w, Some(&bias), QMAX8).unwrap(), got);
                let (words, scales) = p.stored();
                assert!(words == q.packed && scales == q.scales, "{path:?}: panels give back the stored matrix");
                assert!(p.memory() >= n * k && p.memory() <= (n + 64) * k * 9 / 8 + 4 * n * k / block, "{}", p.memory());
            }
        }
    }
    eprintln!("int8 (8-bit activation) paths checked: {ran:?}");
    #[cfg(target_arch = "x86_64")]
    assert!(!std::is_x86_feature_detected!("avx2") || ran.contains(&Path::Avx2.name()));
    assert!(Panels::new(Path::Scalar, &view(&host(16, 64, 8, 32, 1)), QMAX8).is_none());
    assert!(Panels::new(path(), &view(&host(16, 64, 4, 32, 1)), QMAX8).is_none(), "8-bit activations take q8 weights only");
}

/// 8-bit activations quantize within half a step of ±127's grid, and
/// their products are the 16-bit ones' within 8-bit rounding.
#[test]
fn int8_activations_are_8_bit() {
    let (m, k, block) = (3, 128, 32);
    let x = values(m * k, 5);
    let a = quantize_acts_to(&x, m, k, block, QMAX8);
    for (i, (&v, &q)) in x.iter().zip(&a.q).enumerate() {
        let d = a.d[i / block];
        assert!((-127..=127).contains(&q));
        assert!((v - q as f32 * d).abs() <= d * 0.5 + 1e-9, "{v} vs {q}·{d}");
    }
    assert!(a.q[..32].iter().any(|&q| q.abs() == 127));
    let q = host(24, k, 8, block, 3);
    let (r8, r16) = (reference(&a, &view(&q)), reference(&quantize_acts(&x, m, k, block), &view(&q)));
    let scale = r16.iter().fold(0f32, |s, v| s.max(v.abs()));
    let worst = r8.iter().zip(&r16).fold(0f32, |s, (a, b)| s.max((a - b).abs()));
    assert!(worst > 0.0 && worst < 0.02 * scale, "8-bit vs 16-bit activations: {worst} of {scale}");
}

/// The reference computes Σ_b s·d·Σ q_w·q_x exactly up to f32 rounding:
/// checked against f64 arithmetic on the dequantized operands, and against
/// the f32 product with unquantized activations (the error 16-bit
/// activations add: within 1e-4 of the output scale).
#[test]
fn the_reference_is_the_block_quantized_product() {
    let (m, n, k) = (9, 24, 256);
    for (bits, block) in [(8, 32), (4, 16)] {
        let q = host(n, k, bits, block, 3);
        let w = view(&q);
        let x = values(m * k, 11);
        let a = quantize_acts(&x, m, k, block);
        let got = reference(&a, &w);
        let wf: Vec<f32> = (0..n * k).map(|i| w.q(i / k, i % k) as f32 * w.scales[i / w.block]).collect();
        let blocks = k / block;
        let mut scale = 0f64;
        let mut worst_act = 0f64;
        for r in 0..m {
            for c in 0..n {
                let mut exact = 0f64;
                let mut float_acts = 0f64;
                for i in 0..k {
                    let xq = a.q[r * k + i] as f64 * a.d[r * blocks + i / block] as f64;
                    exact += xq * wf[c * k + i] as f64;
                    float_acts += x[r * k + i] as f64 * wf[c * k + i] as f64;
                }
                let g = got[r * n + c] as f64;
                assert!((g - exact).abs() <= 1e-5 * (1.0 + exact.abs()), "q{bits}: {g} vs {exact}");
                scale = f64::max(scale, float_acts.abs());
                worst_act = f64::max(worst_act, (g - float_acts).abs());
            }
        }
        assert!(worst_act <= 1e-4 * scale, "q{bits}: activation quantization error {worst_act} of {scale}");
    }
}

#[test]
fn activations_quantize_within_half_a_step() {
    let (m, k, block) = (3, 128, 32);
    let mut x = values(m * k, 5);
    x[200] = f32::NAN;
    x[300] = f32::INFINITY;
    let a = quantize_acts(&x, m, k, block);
    for (i, (&v, &q)) in x.iter().zip(&a.q).enumerate() {
        let d = a.d[i / block];
        assert!((-32767..=32767).contains(&q));
        if !v.is_finite() || i / block == 300 / block {
            // A block with a non-finite value quantizes to 0 (scale 0) but
            // for NaN's own block, whose other values keep theirs.
            continue;
        }
        assert!((v - q as f32 * d).abs() <= d * 0.5 + 1e-9, "{v} vs {q}·{d}");
    }
    assert_eq!(a.q[200], 0);
    // The all-zero block and the one holding +inf: scale 0, values 0.
    assert_eq!((a.d[2], a.d[300 / block]), (0.0, 0.0));
    assert!(a.q[64..96].iter().all(|&q| q == 0));
    // The largest magnitude of a block maps to ±32767.
    assert!(a.q[..32].iter().any(|&q| q.abs() == 32767));
}

#[test]
fn unsupported_blocks_fall_back() {
    let q = host(16, 128, 8, 64, 1);
    assert!(linear(Path::Scalar, &values(2 * 128, 1), 2, &view(&q), None, QMAX16).is_none());
    let q = host(16, 128, 8, 32, 1);
    // No rows: no output, on every path.
    for path in PATHS.into_iter().filter(|p| p.available()) {
        assert_eq!(linear(path, &[], 0, &view(&q), None, QMAX16), Some(vec![]));
        assert_eq!(linear(path, &[], 0, &view(&q), None, QMAX8), Some(vec![]));
    }
    assert!(linear(Path::Off, &values(2 * 128, 1), 2, &view(&q), None, QMAX16).is_none());
    // 8-bit activations take q8 weights only.
    let q4 = host(16, 128, 4, 32, 1);
    assert!(linear(Path::Scalar, &values(2 * 128, 1), 2, &view(&q4), None, QMAX8).is_none());
}

/// The 8-bit layout (aarch64's dot-product kernel; checked on every host):
/// digits give back every i16 exactly, and the i8 panels hold each signed
/// weight at `[k/4][col][k%4]`, padding columns zero.
#[test]
fn digits_and_i8_panels_are_exact() {
    let mut q: Vec<i16> = (-32768..=32767).step_by(7).chain([i16::MIN, -1, 0, 1, 255, 256, i16::MAX]).collect();
    q.truncate(q.len() / 32 * 32);
    let orig = q.clone();
    for block in [16, 32] {
        let mut d = orig.clone();
        to_digits(&mut d, block);
        // SAFETY: i16 as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(d.as_ptr().cast::<u8>(), d.len() * 2) };
        for (i, &v) in orig.iter().enumerate() {
            let (b, j) = (i / block, i % block);
            let (hi, lo) = (bytes[2 * b * block + j] as i8 as i32, bytes[2 * b * block + block + j] as i32);
            assert_eq!(256 * hi + lo, v as i32, "block {block} at {i}");
        }
    }
    for bits in [8, 4] {
        let qm = host(11, 64, bits, 32, 5);
        let w = view(&qm);
        for group in [4, 8] {
            let p = pack_i8(&w, 8, group);
            assert_eq!(p.len(), 2 * 64 * 8);
            for col in 0..16 {
                for kk in 0..64 {
                    let v = p[(col / 8) * 64 * 8 + (kk / group) * 8 * group + (col % 8) * group + kk % group] as i8 as i32;
                    assert_eq!(v, if col < 11 { w.q(col, kk) } else { 0 }, "q{bits} group {group} col {col} k {kk}");
                }
            }
        }
    }
}

/// Kernel speed on bge-reranker-base's shapes, for tuning (not a gate):
/// `cargo test --release -p crossrank --lib int8_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn int8_speed() {
    let m = 2048;
    for (n, k) in [(2304, 768), (3072, 768), (768, 3072)] {
        let q = host(n, k, 8, 32, 1);
        let w = view(&q);
        let x = values(m * k, 2);
        for path in [Path::Avx512Vnni, Path::Avx2, Path::Simd128].into_iter().filter(|p| p.available()) {
            // Panels per call (q4's way), then built once (q8's, at load),
            // with 16-bit activations; then int8's 8-bit ones.
            let s = best_of(7, || {
                std::hint::black_box(linear(path, &x, m, &w, None, QMAX16));
            });
            eprintln!("{} panels per call m {m} n {n} k {k}: {:.1} ms, {:.1} GMAC/s", path.name(), s * 1e3, (m * n * k) as f64 / s / 1e9);
            for (label, qmax) in [("q8", QMAX16), ("int8", QMAX8)] {
                let p = Panels::new(path, &w, qmax).expect("a q8 shape");
                let s = best_of(7, || {
                    std::hint::black_box(p.linear(&x, m, None));
                });
                eprintln!("{} {label} m {m} n {n} k {k}: {:.1} ms, {:.1} GMAC/s", path.name(), s * 1e3, (m * n * k) as f64 / s / 1e9);
            }
        }
        // The f32 GEMM quantized layers used before (the same crate Burn's
        // CPU backend multiplies with), on the dequantized weights.
        let wf: Vec<f32> = (0..n * k).map(|i| w.q(i / k, i % k) as f32 * w.scales[i / w.block]).collect();
        let mut y = vec![0f32; m * n];
        let s = best_of(7, || {
            // SAFETY: the strides describe x [m, k], Wᵀ [k, n] and y [m, n].
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    y.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    wf.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                );
            }
        });
        eprintln!("f32 gemm m {m} n {n} k {k}: {:.1} ms, {:.1} GMAC/s", s * 1e3, (m * n * k) as f64 / s / 1e9);
    }
}

/// The fastest of `reps` runs of `f`, in seconds (this machine is shared).
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
