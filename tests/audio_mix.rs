//! Audio mixing with real softphones: three baresip instances (Debian `baresip-core`), each
//! playing its own tone from a WAV file (`aufile`) and recording what it hears (`sndfile`), join
//! one conference (SIP phones hear the mix by default). Each recording must contain the other two tones and not its
//! own (Goertzel). The third phone speaks Opus while the others speak PCMU: the mixer bridges
//! the codecs.

mod common;

use common::Server;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `seconds` of a tone, 16-bit PCM at `rate` on `channels` channels.
fn tone_wav(path: &Path, freq: f64, rate: u32, channels: u16, seconds: u32) {
    let n = rate * seconds;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            ((f64::from(i) * freq * std::f64::consts::TAU / f64::from(rate)).sin() * 8000.0) as i16
        })
        .flat_map(|s| std::iter::repeat_n(s, usize::from(channels)))
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    wav.extend_from_slice(&(2 * channels).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, wav).unwrap();
}

/// (sample rate, channels, samples) of a PCM WAV file.
fn read_wav(path: &Path) -> (u32, u16, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 12;
    let (mut rate, mut channels) = (8000, 1);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            channels = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            let samples = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate, channels, samples);
        }
        at += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// Share of the signal's power at `freq` (Goertzel), about 1.0 for a pure tone.
fn share_of(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = freq * std::f64::consts::TAU / f64::from(rate);
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    2.0 * power / (total * samples.len() as f64).max(1.0)
}

struct Phone {
    name: &'static str,
    freq: f64,
    dir: tempfile::TempDir,
    child: Child,
}

fn phone(name: &'static str, freq: f64, codec: &str, uri: &str) -> Phone {
    let dir = tempfile::tempdir().unwrap();
    // baresip 1.0's aufile source needs the codec's rate and channels (Opus: 48 kHz stereo).
    let (rate, channels) = if codec.starts_with("opus") {
        (48000, 2)
    } else {
        (8000, 1)
    };
    let wav = dir.path().join("tone.wav");
    tone_wav(&wav, freq, rate, channels, 12);
    let sip_port = common::free_sip_port();
    let rtp_lo = 61000 + (sip_port % 40) * 100;
    let config = format!(
        "poll_method epoll\nnet_interface 127.0.0.1\nsip_listen 127.0.0.1:{sip_port}\n\
audio_player aufile,{nowhere}\naudio_source aufile,{wav}\naudio_alert aufile,/dev/null\n\
rtp_ports {rtp_lo}-{rtp_hi}\nsnd_path {dir}\nmodule_path /usr/lib/baresip/modules\n\
module g711.so\nmodule opus.so\nmodule aufile.so\nmodule sndfile.so\nmodule_app account.so\nmodule_app menu.so\n",
        nowhere = dir.path().join("player.wav").display(),
        wav = wav.display(),
        rtp_hi = rtp_lo + 99,
        dir = dir.path().display(),
    );
    std::fs::write(dir.path().join("config"), config).unwrap();
    std::fs::write(
        dir.path().join("accounts"),
        format!("<sip:{name}@127.0.0.1>;regint=0;audio_codecs={codec}\n"),
    )
    .unwrap();
    let child = Command::new("baresip")
        .arg("-f")
        .arg(dir.path())
        .args(["-e", &format!("/dial {uri}"), "-t", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("baresip is installed (Debian package baresip-core)");
    Phone {
        name,
        freq,
        dir,
        child,
    }
}

/// The recording of what the phone's decoder produced (sndfile's `*-dec.wav`).
fn recording(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
}

#[test]
fn three_softphones_each_hear_the_other_two_and_not_themselves() {
    let server = Server::start();
    let (conf, pin) = server.open_conference("tones");
    // No `;audio=` parameter: SIP phones get the mix by default.
    let uri = server.join_uri(&conf, &pin);
    let mut phones = vec![
        phone("tone-c", 1300.0, "opus/48000/2", &uri),
        phone("tone-a", 500.0, "PCMU", &uri),
        phone("tone-b", 900.0, "PCMU", &uri),
    ];
    // Mid-call: everyone is in and (by the levels) talking.
    std::thread::sleep(Duration::from_secs(5));
    let roster_during = server.get(&format!("/api/v1/conferences/{conf}"));
    let limit = Instant::now() + Duration::from_secs(20);
    for p in phones.iter_mut() {
        while p.child.try_wait().unwrap().is_none() && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = p.child.kill();
    }
    for p in roster_during["participants"].as_array().unwrap() {
        assert_eq!(p["audio_mode"], "mix", "{p}");
        assert_eq!(p["talking"], true, "talking shows in the roster: {p}");
    }
    assert_eq!(roster_during["participants"].as_array().unwrap().len(), 3);
    let freqs: Vec<f64> = phones.iter().map(|p| p.freq).collect();
    for p in phones {
        let out = p.child.wait_with_output().unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let file = recording(p.dir.path())
            .unwrap_or_else(|| panic!("{} recorded nothing:\n{log}", p.name));
        let (rate, channels, samples) = read_wav(&file);
        let mono: Vec<i16> = samples
            .iter()
            .step_by(usize::from(channels))
            .copied()
            .collect();
        // The middle of the call: everyone has joined and is playing.
        let middle = &mono[mono.len() / 3..mono.len() * 5 / 6];
        let shares: Vec<(f64, f64)> = freqs
            .iter()
            .map(|f| (*f, share_of(middle, rate, *f)))
            .collect();
        eprintln!("{} ({} Hz) hears {shares:?} at {rate} Hz", p.name, p.freq);
        for (f, share) in shares {
            if f == p.freq {
                assert!(
                    share < 0.05,
                    "{} hears its own tone ({share}):\n{log}",
                    p.name
                );
            } else {
                assert!(
                    share > 0.1,
                    "{} misses the {f} Hz tone ({share}):\n{log}\n{roster_during}",
                    p.name
                );
            }
        }
    }
}

#[test]
fn conference_setting_and_join_parameter_choose_the_audio_mode() {
    let server = Server::start();
    let v: serde_json::Value = server
        .http()
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some(common::password("alice")))
        .json(&serde_json::json!({ "name": "an SFU room", "audio": "forward" }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["audio"], "forward", "{v}");
    let (conf, pin) = (v["id"].as_str().unwrap(), v["pin"].as_str().unwrap());
    let mut calls = Vec::new();
    for (user, uri) in [
        ("alice", server.join_uri(conf, pin)),
        ("bob", format!("{};audio=mix", server.join_uri(conf, pin))),
    ] {
        let rtp = common::rtp::RtpPeer::bind("127.0.0.1", 1);
        let mut ua = common::ua::Ua::new(user, server.sip);
        let call = ua.invite(&uri, &rtp.offer(), None, &[]).expect("join");
        calls.push((ua, call, rtp));
    }
    let info = server.get(&format!("/api/v1/conferences/{conf}"));
    assert_eq!(info["audio"], "forward");
    let modes: Vec<_> = info["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["user"].clone(), p["audio_mode"].clone()))
        .collect();
    assert_eq!(
        modes,
        [
            ("alice".into(), "forward".into()),
            ("bob".into(), "mix".into())
        ]
    );
    let refused = server
        .http()
        .post(server.url("/api/v1/conferences"))
        .basic_auth("alice", Some(common::password("alice")))
        .json(&serde_json::json!({ "audio": "loud" }))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    for (mut ua, mut call, _) in calls {
        assert_eq!(ua.bye(&mut call).status, 200);
    }
}
