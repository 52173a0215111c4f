//! Signal measurements on PCM audio.

/// The share of a signal's power at `freq` (Goertzel algorithm): about 1.0 for a pure tone at
/// that frequency, about 0.5 each for an equal mix of two tones, near 0 when it is absent.
pub fn tone_share(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = freq * std::f64::consts::TAU / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let total: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    2.0 * power / (total * samples.len() as f64).max(1.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pure_and_mixed_tones() {
        let tone = |f: f64, i: usize| (i as f64 * f * std::f64::consts::TAU / 8000.0).sin();
        let pure: Vec<i16> = (0..8000)
            .map(|i| (tone(500.0, i) * 8000.0) as i16)
            .collect();
        assert!((super::tone_share(&pure, 8000, 500.0) - 1.0).abs() < 0.05);
        assert!(super::tone_share(&pure, 8000, 900.0) < 0.01);
        let mixed: Vec<i16> = (0..8000)
            .map(|i| ((tone(500.0, i) + tone(900.0, i)) * 6000.0) as i16)
            .collect();
        assert!((super::tone_share(&mixed, 8000, 900.0) - 0.5).abs() < 0.05);
    }
}
