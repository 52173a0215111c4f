//! Audio codecs of the mixer: G.711 µ-law and A-law (ITU-T G.711, by the classic
//! segment/quantisation algorithm), G.722 (the pure-Rust SB-ADPCM of the `audio-codec` crate)
//! and Opus (libopus, built from vendored sources by the `convoke-opus` crate). Everything is decoded to, mixed at and encoded from
//! 48 kHz mono frames of 20 ms. No allocation per frame.

use audio_codec::g722::{G722Decoder, G722Encoder};
use audio_codec::{Decoder as _, Encoder as _};

use convoke_opus::{OpusDecoder, OpusEncoder, OpusError};

/// Samples in one 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;
/// 48 kHz samples per 8 kHz sample.
const UP: usize = 6;
/// Samples in one 20 ms frame at 8 kHz.
const NARROW: usize = FRAME / UP;
/// 48 kHz samples per 16 kHz (G.722) sample, and a 20 ms frame at 16 kHz.
const UP_WIDE: usize = 3;
const WIDE: usize = FRAME / UP_WIDE;

pub type Frame = [i16; FRAME];

/// The audio codecs the mixer can decode and encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AudioCodec {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl AudioCodec {
    /// From an SDP encoding name; `None` for codecs the mixer does not handle.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "pcmu" => Some(Self::Pcmu),
            "pcma" => Some(Self::Pcma),
            "g722" => Some(Self::G722),
            "opus" => Some(Self::Opus),
            _ => None,
        }
    }

    /// RTP timestamp units per 20 ms frame (G.722's RTP clock is 8 kHz, RFC 3551).
    pub fn timestamp_step(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 160,
            Self::Opus => 960,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("opus: {0}")]
pub struct CodecError(#[from] OpusError);

/// Decodes one participant's stream.
pub enum AudioDecoder {
    G711 {
        alaw: bool,
        /// Last 8 kHz sample of the previous frame, for interpolation across frames.
        last: i16,
        concealer: Concealer,
    },
    G722 {
        decoder: Box<G722Decoder>,
        wide: Box<[i16; WIDE]>,
        last: i16,
        concealer: Concealer,
    },
    Opus(OpusDecoder),
}

/// Loss concealment for codecs without their own: the last good frame again, halved for every
/// frame lost in a row.
pub struct Concealer {
    previous: Box<Frame>,
    lost: u8,
}

impl Concealer {
    fn new() -> Self {
        Self {
            previous: Box::new([0; FRAME]),
            lost: 0,
        }
    }

    fn conceal(&mut self, out: &mut Frame) {
        self.lost = self.lost.saturating_add(1);
        let shift = self.lost.min(15);
        for (o, p) in out.iter_mut().zip(self.previous.iter()) {
            *o = p >> shift;
        }
    }

    fn keep(&mut self, good: &Frame) {
        self.lost = 0;
        self.previous.copy_from_slice(good);
    }
}

/// Linear interpolation up by `factor`, from the previous frame's last sample (kept in `last`).
fn upsample(input: &[i16], factor: usize, last: &mut i16, out: &mut Frame) {
    for (i, &s) in input.iter().enumerate().take(FRAME / factor) {
        let (a, b) = (i32::from(*last), i32::from(s));
        for k in 0..factor {
            out[i * factor + k] = (a + (b - a) * (k as i32 + 1) / factor as i32) as i16;
        }
        *last = s;
    }
}

/// Down by `factor`, averaging each group (a crude low-pass, enough below the target band).
fn downsample(frame: &Frame, factor: usize, mut each: impl FnMut(usize, i16)) {
    for (i, chunk) in frame.chunks_exact(factor).enumerate() {
        each(
            i,
            (chunk.iter().map(|&x| i32::from(x)).sum::<i32>() / factor as i32) as i16,
        );
    }
}

impl AudioDecoder {
    pub fn new(codec: AudioCodec) -> Result<Self, CodecError> {
        Ok(match codec {
            AudioCodec::Pcmu | AudioCodec::Pcma => Self::G711 {
                alaw: codec == AudioCodec::Pcma,
                last: 0,
                concealer: Concealer::new(),
            },
            AudioCodec::G722 => Self::G722 {
                decoder: Box::new(G722Decoder::new()),
                wide: Box::new([0; WIDE]),
                last: 0,
                concealer: Concealer::new(),
            },
            AudioCodec::Opus => Self::Opus(OpusDecoder::new()?),
        })
    }

    /// Decodes `payload` into `out`, or conceals a lost packet when `payload` is `None`
    /// (G.711 and G.722: the last frame again, halved each time; Opus: its own concealment).
    pub fn decode(&mut self, payload: Option<&[u8]>, out: &mut Frame) {
        match self {
            Self::G711 {
                alaw,
                last,
                concealer,
            } => {
                let Some(payload) = payload else {
                    return concealer.conceal(out);
                };
                let mut narrow = [0i16; NARROW];
                for (i, n) in narrow.iter_mut().enumerate() {
                    let byte = payload.get(i).copied().unwrap_or(0xff);
                    *n = if *alaw {
                        alaw_decode(byte)
                    } else {
                        ulaw_decode(byte)
                    };
                }
                upsample(&narrow, UP, last, out);
                concealer.keep(out);
            }
            Self::G722 {
                decoder,
                wide,
                last,
                concealer,
            } => {
                let Some(payload) = payload else {
                    return concealer.conceal(out);
                };
                let n = decoder
                    .decode_into(&payload[..payload.len().min(WIDE / 2)], &mut wide[..])
                    .unwrap_or(0);
                wide[n.min(WIDE)..].fill(0);
                upsample(&wide[..], UP_WIDE, last, out);
                concealer.keep(out);
            }
            Self::Opus(d) => {
                let n = d.decode(payload, &mut out[..], false).ok();
                let n = n.unwrap_or(0).min(FRAME);
                out[n..].fill(0);
            }
        }
    }
}

impl AudioDecoder {
    /// Rebuilds a lost frame from the forward error correction carried in the next packet
    /// (Opus in-band FEC; without FEC data libopus conceals). G.711 has none: it conceals.
    pub fn recover(&mut self, next: &[u8], out: &mut Frame) {
        match self {
            Self::Opus(d) => {
                let n = d
                    .decode(Some(next), &mut out[..], true)
                    .ok()
                    .unwrap_or(0)
                    .min(FRAME);
                out[n..].fill(0);
            }
            Self::G711 { .. } | Self::G722 { .. } => self.decode(None, out),
        }
    }
}

/// Encodes one participant's mix.
pub enum AudioEncoder {
    G711 {
        alaw: bool,
    },
    G722 {
        encoder: Box<G722Encoder>,
        wide: Box<[i16; WIDE]>,
    },
    Opus(OpusEncoder),
}

impl AudioEncoder {
    pub fn new(codec: AudioCodec) -> Result<Self, CodecError> {
        Ok(match codec {
            AudioCodec::Pcmu | AudioCodec::Pcma => Self::G711 {
                alaw: codec == AudioCodec::Pcma,
            },
            AudioCodec::G722 => Self::G722 {
                encoder: Box::new(G722Encoder::new()),
                wide: Box::new([0; WIDE]),
            },
            AudioCodec::Opus => Self::Opus(OpusEncoder::voip()?),
        })
    }

    /// Encodes `frame` into `out`; returns the payload length (0 if the encoder failed).
    pub fn encode(&mut self, frame: &Frame, out: &mut [u8]) -> usize {
        match self {
            Self::G711 { alaw } => {
                if out.len() < NARROW {
                    return 0;
                }
                downsample(frame, UP, |i, s| {
                    out[i] = if *alaw {
                        alaw_encode(s)
                    } else {
                        ulaw_encode(s)
                    };
                });
                NARROW
            }
            Self::G722 { encoder, wide } => {
                downsample(frame, UP_WIDE, |i, s| wide[i] = s);
                encoder.encode_into(&wide[..], out).unwrap_or(0)
            }
            Self::Opus(e) => e.encode(&frame[..], out).unwrap_or(0),
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(ULAW_CLIP) + ULAW_BIAS;
    let exponent = (7 - (s << 17).leading_zeros().min(7)) as i32;
    let exponent = exponent.clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    s = s.min(32767);
    let out = if s < 256 {
        s >> 4
    } else {
        let exponent = (31 - (s as u32).leading_zeros()) as i32 - 7;
        let mantissa = (s >> (exponent + 3)) & 0x0f;
        (exponent << 4) | mantissa
    };
    ((sign | out) ^ 0x55) as u8
}

pub fn alaw_decode(byte: u8) -> i16 {
    let b = i32::from(byte ^ 0x55);
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = b & 0x0f;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            for (enc, dec) in [
                (ulaw_encode as fn(i16) -> u8, ulaw_decode as fn(u8) -> i16),
                (alaw_encode, alaw_decode),
            ] {
                let back = dec(enc(s));
                let err = (i32::from(back) - i32::from(s)).abs();
                // Logarithmic steps: the error grows with the magnitude (1/16 of it, plus a bit).
                assert!(
                    err <= (i32::from(s).abs() / 16).max(16) + 132,
                    "{s} -> {back}"
                );
            }
        }
        // Known code points (ITU-T G.711 tables).
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
    }

    #[test]
    fn opus_round_trip_keeps_a_tone() {
        let mut enc = AudioEncoder::new(AudioCodec::Opus).unwrap();
        let mut dec = AudioDecoder::new(AudioCodec::Opus).unwrap();
        let mut payload = [0u8; 1500];
        let mut out = [0i16; FRAME];
        let mut energy = 0f64;
        for f in 0..10 {
            let frame: Frame = std::array::from_fn(|i| {
                let t = (f * FRAME + i) as f64 / 48000.0;
                ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
            });
            let n = enc.encode(&frame, &mut payload);
            assert!(n > 0);
            dec.decode(Some(&payload[..n]), &mut out);
            if f > 3 {
                energy += out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        let rms = (energy / (6 * FRAME) as f64).sqrt();
        assert!(rms > 3000.0, "rms {rms}");
    }

    #[test]
    fn g722_round_trip_keeps_a_tone_and_its_rate() {
        let mut enc = AudioEncoder::new(AudioCodec::G722).unwrap();
        let mut dec = AudioDecoder::new(AudioCodec::G722).unwrap();
        let mut payload = [0u8; 1500];
        let mut out = [0i16; FRAME];
        let mut heard = Vec::new();
        for f in 0..20 {
            let frame: Frame = std::array::from_fn(|i| {
                let t = (f * FRAME + i) as f64 / 48000.0;
                ((t * 1000.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
            });
            let n = enc.encode(&frame, &mut payload);
            assert_eq!(n, 160, "64 kbit/s: 160 bytes per 20 ms");
            dec.decode(Some(&payload[..n]), &mut out);
            if f >= 5 {
                heard.extend_from_slice(&out);
            }
        }
        let share = crate::media::analysis::tone_share(&heard, 48000, 1000.0);
        assert!(share > 0.8, "1 kHz after G.722: {share}");
    }

    #[test]
    fn lost_g711_packets_fade_instead_of_going_silent() {
        let mut dec = AudioDecoder::new(AudioCodec::Pcmu).unwrap();
        let mut out = [0i16; FRAME];
        let payload: Vec<u8> = (0..160)
            .map(|i| ulaw_encode(((i as f64 * 0.3).sin() * 10000.0) as i16))
            .collect();
        dec.decode(Some(&payload), &mut out);
        let loud = out.iter().map(|s| i32::from(*s).abs()).max().unwrap();
        dec.decode(None, &mut out);
        let concealed = out.iter().map(|s| i32::from(*s).abs()).max().unwrap();
        assert!(
            concealed > loud / 4 && concealed < loud,
            "{loud} -> {concealed}"
        );
    }
}
