//! Image corruptions for generalisation experiments (seed 000's "similar unseen inputs"):
//! noise, brightness, rotation and a fog-like haze, on `[C, H, W]` images in `[0, 1]`.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// One kind of corruption with its strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Corruption {
    /// Additive Gaussian noise with this standard deviation.
    Noise(f32),
    /// Added brightness.
    Brightness(f32),
    /// Rotation about the centre, degrees (bilinear, black fill).
    Rotation(f32),
    /// Blend with a smooth random haze of this strength (0..1).
    Fog(f32),
}

impl Corruption {
    /// A short label ("noise 0.3", ...).
    pub fn label(&self) -> String {
        match self {
            Corruption::Noise(s) => format!("noise {s}"),
            Corruption::Brightness(s) => format!("brightness {s}"),
            Corruption::Rotation(s) => format!("rotation {s}"),
            Corruption::Fog(s) => format!("fog {s}"),
        }
    }
}

impl std::str::FromStr for Corruption {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (kind, v) = s.split_once(':').unwrap_or((s, ""));
        let v: Option<f32> = if v.is_empty() { None } else { Some(v.parse()?) };
        Ok(match kind {
            "noise" => Corruption::Noise(v.unwrap_or(0.3)),
            "brightness" => Corruption::Brightness(v.unwrap_or(0.4)),
            "rotation" => Corruption::Rotation(v.unwrap_or(20.0)),
            "fog" => Corruption::Fog(v.unwrap_or(0.5)),
            _ => anyhow::bail!(
                "unknown corruption '{s}' (noise[:sd], brightness[:delta], rotation[:degrees], fog[:strength])"
            ),
        })
    }
}

/// Applies `c` to every image of `images` (`n` images of shape `[ch, h, w]`, flattened),
/// seeded per image so results are reproducible.
pub fn corrupt(images: &[f32], shape: [usize; 3], c: Corruption, seed: u64) -> Vec<f32> {
    let len = shape.iter().product::<usize>();
    images
        .chunks(len)
        .enumerate()
        .flat_map(|(i, img)| corrupt_one(img, shape, c, seed.wrapping_mul(1_000_003) + i as u64))
        .collect()
}

fn corrupt_one(img: &[f32], [ch, h, w]: [usize; 3], c: Corruption, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let clamp = |v: f32| v.clamp(0.0, 1.0);
    match c {
        Corruption::Noise(sd) => {
            let n = Normal::new(0.0f32, sd.max(0.0)).expect("finite sd");
            img.iter().map(|&v| clamp(v + n.sample(&mut rng))).collect()
        }
        Corruption::Brightness(d) => img.iter().map(|&v| clamp(v + d)).collect(),
        Corruption::Rotation(deg) => {
            let (s, co) = deg.to_radians().sin_cos();
            let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
            let mut out = vec![0.0; img.len()];
            for k in 0..ch {
                let plane = &img[k * h * w..(k + 1) * h * w];
                for y in 0..h {
                    for x in 0..w {
                        // Inverse map: where does output (y, x) come from?
                        let (dy, dx) = (y as f32 - cy, x as f32 - cx);
                        let sx = co * dx + s * dy + cx;
                        let sy = -s * dx + co * dy + cy;
                        out[k * h * w + y * w + x] = bilinear(plane, h, w, sy, sx);
                    }
                }
            }
            out
        }
        Corruption::Fog(strength) => {
            // A haze: a sum of a few random low-frequency waves, scaled to [0, 1].
            let waves: Vec<[f32; 4]> = (0..4)
                .map(|_| {
                    [
                        rng.random_range(0.5..2.5),
                        rng.random_range(0.5..2.5),
                        rng.random_range(0.0..std::f32::consts::TAU),
                        rng.random_range(0.5..1.0),
                    ]
                })
                .collect();
            let mut field = vec![0.0f32; h * w];
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = (y as f32 / h as f32, x as f32 / w as f32);
                    field[y * w + x] = waves
                        .iter()
                        .map(|[fy, fx, p, a]| {
                            a * (std::f32::consts::TAU * (fy * u + fx * v) + p).sin()
                        })
                        .sum();
                }
            }
            let (lo, hi) = field
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let span = (hi - lo).max(1e-6);
            img.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let f = (field[i % (h * w)] - lo) / span;
                    clamp(v * (1.0 - strength) + strength * f)
                })
                .collect()
        }
    }
}

fn bilinear(plane: &[f32], h: usize, w: usize, y: f32, x: f32) -> f32 {
    let at = |yy: i64, xx: i64| {
        if yy < 0 || xx < 0 || yy >= h as i64 || xx >= w as i64 {
            0.0
        } else {
            plane[yy as usize * w + xx as usize]
        }
    };
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let (y0, x0) = (y0 as i64, x0 as i64);
    at(y0, x0) * (1.0 - fy) * (1.0 - fx)
        + at(y0, x0 + 1) * (1.0 - fy) * fx
        + at(y0 + 1, x0) * fy * (1.0 - fx)
        + at(y0 + 1, x0 + 1) * fy * fx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_by_90_degrees_moves_a_pixel_to_the_next_corner() {
        let mut img = vec![0.0f32; 9];
        img[0] = 1.0; // top-left of a 3x3 image
        let out = corrupt(&img, [1, 3, 3], Corruption::Rotation(90.0), 0);
        let hot: Vec<usize> = (0..9).filter(|&i| out[i] > 0.99).collect();
        assert_eq!(hot.len(), 1);
        assert!([2, 6].contains(&hot[0]), "{out:?}");
        assert!(out.iter().sum::<f32>() > 0.99 && out.iter().sum::<f32>() < 1.01);
    }

    #[test]
    fn corruptions_stay_in_range_and_are_seeded() {
        let img: Vec<f32> = (0..2 * 16).map(|i| (i % 7) as f32 / 6.0).collect();
        for c in ["noise:0.5", "brightness:0.7", "rotation:33", "fog:0.6"] {
            let c: Corruption = c.parse().unwrap();
            let a = corrupt(&img, [1, 4, 4], c, 3);
            assert_eq!(a, corrupt(&img, [1, 4, 4], c, 3));
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)), "{c:?}");
            assert_ne!(a, img, "{c:?}");
        }
        assert_eq!(
            corrupt(&[0.5], [1, 1, 1], Corruption::Brightness(0.2), 0),
            vec![0.7]
        );
    }
}
