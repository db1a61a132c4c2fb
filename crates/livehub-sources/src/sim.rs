//! Small numeric helpers shared by the simulated sources.

use rand::rngs::StdRng;
use rand::Rng;

/// A standard normal sample (mean 0, deviation 1), by the Box–Muller transform.
pub(crate) fn gaussian(rng: &mut StdRng) -> f64 {
    // `1 - u` lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An exponentially distributed duration with the given mean: the gap between events of a
/// Poisson process.
pub(crate) fn exponential(rng: &mut StdRng, mean: f64) -> f64 {
    let u = 1.0 - rng.random::<f64>();
    -mean * u.ln()
}

/// Whether an event with the given mean interval happens within `dt_secs`.
pub(crate) fn chance(rng: &mut StdRng, dt_secs: f64, mean_secs: f64) -> bool {
    let p = 1.0 - (-dt_secs / mean_secs).exp();
    rng.random::<f64>() < p
}

/// `x` rounded to `decimals` places, for compact payloads.
pub(crate) fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Smooth noise: a mean-reverting random walk (an Ornstein–Uhlenbeck process) around 0, so that
/// simulated readings drift like weather rather than jitter like dice.
#[derive(Clone, Debug)]
pub(crate) struct Drift {
    value: f64,
    /// Typical distance from 0 in the long run.
    spread: f64,
    /// Seconds it takes to forget about half of the current value.
    half_life: f64,
}

impl Drift {
    /// Noise starting at 0 that wanders about `spread` away, forgetting over `half_life` seconds.
    pub(crate) fn new(spread: f64, half_life: f64) -> Self {
        Self { value: 0.0, spread, half_life }
    }

    /// Advances by `dt_secs` and returns the new value.
    pub(crate) fn step(&mut self, rng: &mut StdRng, dt_secs: f64) -> f64 {
        if dt_secs <= 0.0 {
            return self.value;
        }
        let keep = 0.5f64.powf(dt_secs / self.half_life);
        // This innovation keeps the stationary deviation at `spread` whatever the step.
        let innovation = self.spread * (1.0 - keep * keep).sqrt();
        self.value = self.value * keep + innovation * gaussian(rng);
        self.value
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn gaussian_has_unit_spread() {
        let mut rng = StdRng::seed_from_u64(1);
        let n = 20_000;
        let samples: Vec<f64> = (0..n).map(|_| gaussian(&mut rng)).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.1, "variance {var}");
    }

    #[test]
    fn exponential_has_the_mean() {
        let mut rng = StdRng::seed_from_u64(2);
        let n = 20_000;
        let mean = (0..n).map(|_| exponential(&mut rng, 20.0)).sum::<f64>() / n as f64;
        assert!((mean - 20.0).abs() < 1.0, "mean {mean}");
    }

    #[test]
    fn drift_stays_near_its_spread() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut drift = Drift::new(2.0, 60.0);
        let values: Vec<f64> = (0..20_000).map(|_| drift.step(&mut rng, 1.0)).collect();
        let rms = (values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64).sqrt();
        assert!((1.0..3.0).contains(&rms), "rms {rms}");
    }

    #[test]
    fn rounds() {
        assert_eq!(round_to(189.4249, 2), 189.42);
        assert_eq!(round_to(-1.25, 1), -1.3);
    }
}
