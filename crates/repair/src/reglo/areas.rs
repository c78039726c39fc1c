//! REGLO's repair areas: searching for violations, the boxes around them and their twin
//! bounds, and the cover of the whole region.

use netrepair_nn::Network;
use netrepair_spec::{BoxRegion, GlobalProperty, Perturbation};
use netrepair_verify::{
    jacobian_norm, pgd_variation, property_twin_pieces, uniform_points, Chain, TwinBounds,
};
use rayon::prelude::*;

use crate::error::Result;

use super::params::Reglo;

/// A repair area: `x` ranges over `region`.
pub(super) struct Area {
    pub(super) prop: usize,
    pub(super) region: BoxRegion,
    /// Per twin piece: the box of `dx` and the bounds.
    pub(super) pieces: Vec<(BoxRegion, TwinBounds)>,
}

impl Reglo {
    /// Data points inside `region`, then uniform draws, `n` in all.
    pub(super) fn sample(&self, region: &BoxRegion, n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut pts: Vec<Vec<f64>> = self
            .points
            .iter()
            .filter(|p| region.contains(p, 0.0))
            .take(n)
            .cloned()
            .collect();
        let more = n - pts.len();
        pts.extend(uniform_points(region, more, seed));
        pts
    }

    /// The area around a point: `area_radius` of the region's width on every side, clipped.
    pub(super) fn area_around(&self, prop: &GlobalProperty, x: &[f64]) -> BoxRegion {
        let r = &prop.region;
        if let (true, Perturbation::Sensitive { features }) = (self.segments, &prop.perturbation) {
            let mut b = BoxRegion {
                lower: x.to_vec(),
                upper: x.to_vec(),
            };
            for &f in features {
                b.lower[f] = r.lower[f];
                b.upper[f] = r.upper[f];
            }
            return b;
        }
        let h = |d: usize| self.area_radius * (r.upper[d] - r.lower[d]);
        BoxRegion {
            lower: x
                .iter()
                .enumerate()
                .map(|(d, v)| (v - h(d)).max(r.lower[d]))
                .collect(),
            upper: x
                .iter()
                .enumerate()
                .map(|(d, v)| (v + h(d)).min(r.upper[d]))
                .collect(),
        }
    }

    /// Centres of new areas for one property on the current network: (searched, flagged,
    /// violating, centres).
    pub(super) fn search(
        &self,
        chain: &Chain,
        prop: &GlobalProperty,
        taken: &[&BoxRegion],
        seed: u64,
    ) -> (usize, usize, usize, Vec<Vec<f64>>) {
        let pts: Vec<Vec<f64>> = self
            .sample(&prop.region, self.samples + self.points.len(), seed)
            .into_iter()
            .filter(|p| !taken.iter().any(|a| a.contains(p, 0.0)))
            .collect();
        let threshold = prop.eps / prop.diameter();
        let mut flagged: Vec<(f64, Vec<f64>)> = pts
            .par_iter()
            .map(|x| (jacobian_norm(chain, prop, x), x.clone()))
            .filter(|(n, _)| *n > threshold)
            .collect();
        flagged.sort_by(|a, b| b.0.total_cmp(&a.0));
        let n_flagged = flagged.len();
        let attacked: Vec<Vec<f64>> = flagged
            .into_iter()
            .take(4 * self.max_areas)
            .map(|f| f.1)
            .collect();
        let rep = pgd_variation(chain, prop, &attacked, &self.attack);
        let mut order: Vec<usize> = (0..attacked.len())
            .filter(|&i| rep.per_point[i] > prop.eps)
            .collect();
        let violating = order.len();
        order.sort_by(|&a, &b| rep.per_point[b].total_cmp(&rep.per_point[a]));
        let mut centres: Vec<Vec<f64>> = Vec::new();
        for i in order {
            let x = &attacked[i];
            let fresh = centres
                .iter()
                .all(|c| !self.area_around(prop, c).contains(x, 0.0));
            if fresh {
                centres.push(x.clone());
            }
            if centres.len() == self.max_areas {
                break;
            }
        }
        (pts.len(), n_flagged, violating, centres)
    }

    /// Twin bounds of every box (in parallel) as areas of property `p`.
    pub(super) fn bound_areas(
        &self,
        net: &Network,
        chain: &Chain,
        p: usize,
        prop: &GlobalProperty,
        boxes: Vec<BoxRegion>,
    ) -> Result<Vec<Area>> {
        boxes
            .into_par_iter()
            .map(|b| {
                Ok(Area {
                    prop: p,
                    pieces: property_twin_pieces(net, chain, prop, &b, self.pieces)?,
                    region: b,
                })
            })
            .collect()
    }

    /// `n` boxes covering the region: widest-side bisection, breadth first.
    pub(super) fn cover_boxes(prop: &GlobalProperty, n: usize) -> Vec<BoxRegion> {
        let mut boxes = vec![prop.region.clone()];
        while boxes.len() * 2 <= n {
            boxes = boxes.iter().flat_map(BoxRegion::halve_widest).collect();
        }
        boxes
    }
}
