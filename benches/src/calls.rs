//! Calls: glass-to-glass latency, from each frame's capture at one end to
//! its decoding at the other, between two real daemons on loopback
//! (`call-latency`) and through the tracker's relay (`call-relayed`).
//!
//! The baseline, in the same run, is bare GStreamer: the same capture and
//! encoding pipeline feeding the same decoding pipeline in this process,
//! frame by frame, with no network and no jitter buffer. The difference is
//! what Skein adds: the peer streams, the jitter buffer's playout delay,
//! and the daemons' scheduling.
//!
//! Each side sends GStreamer's test tone and colour bars (`--test-source`);
//! the figures are alice's, for what bob sent her, over the whole call.
//! The direct call runs once per video codec this machine has (VP8, and
//! H.264 where GStreamer has x264 and libav), each against a baseline in
//! the same codec.

use crate::cluster::Cluster;
use crate::report::Row;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use skein_media::capture::{Capture, CaptureConfig};
use skein_media::playback::{Decoded, Playback, PlaybackConfig};
use skein_media::{Kind, VideoCodec};
use skein_node::control::ControlRequest;
use std::time::Duration;

/// The audio target: p99 at most this, ms.
const AUDIO_P99_MS: f64 = 150.0;
/// The video target: p99 at most this, ms.
const VIDEO_P99_MS: f64 = 200.0;

/// Latencies in ms: p50, p99 and how many.
#[derive(Debug, Clone, Copy, Default)]
struct Spread {
    p50: f64,
    p99: f64,
    n: usize,
}

impl Spread {
    fn of(mut samples: Vec<f64>) -> Spread {
        if samples.is_empty() {
            return Spread::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| samples[((p / 100.0) * (samples.len() - 1) as f64).round() as usize];
        Spread { p50: at(50.0), p99: at(99.0), n: samples.len() }
    }

    fn from_stats(v: &Value) -> Spread {
        Spread {
            p50: v["p50"].as_f64().unwrap_or(0.0),
            p99: v["p99"].as_f64().unwrap_or(0.0),
            n: v["samples"].as_u64().unwrap_or(0) as usize,
        }
    }

    fn show(&self) -> String {
        format!("p50 {:.1} ms, p99 {:.1} ms ({} frames)", self.p50, self.p99, self.n)
    }
}

/// Bare GStreamer for `secs`, video in `codec`: encode, then decode, in this process.
async fn baseline(secs: u64, codec: VideoCodec) -> Result<(Spread, Spread)> {
    let (encoded_tx, mut encoded) = tokio::sync::mpsc::channel(256);
    let (decoded_tx, mut decoded) = tokio::sync::mpsc::unbounded_channel();
    let config = CaptureConfig { test_source: true, codecs: vec![codec], ..CaptureConfig::default() };
    let capture = Capture::start(&config, encoded_tx, None, |e| eprintln!("skein-bench: capture failed: {e}"))?;
    let playback = Playback::start(
        &PlaybackConfig { video: true, speaker: false, frames: None, codecs: vec![codec] },
        decoded_tx,
        None,
        || {},
        |e| eprintln!("skein-bench: playback failed: {e}"),
    )?;
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let (mut audio, mut video) = (Vec::new(), Vec::new());
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => break,
            Some(e) = encoded.recv() => match e.kind {
                Kind::Audio => playback.push_audio(e.capture_us, e.duration_us, &e.data),
                Kind::Video(codec) => {
                    playback.push_video(codec, e.capture_us, e.duration_us, e.keyframe, &e.data);
                }
            },
            Some(d) = decoded.recv() => match d {
                Decoded::Audio { capture_us, at_us, .. } => audio.push(at_us.saturating_sub(capture_us) as f64 / 1000.0),
                Decoded::Video { capture_us, at_us } => video.push(at_us.saturating_sub(capture_us) as f64 / 1000.0),
            },
        }
    }
    drop(capture);
    drop(playback);
    Ok((Spread::of(audio), Spread::of(video)))
}

/// A call of `secs` from alice to bob, who answers, with video in `codec`
/// (otherwise as the daemons choose): alice's final statistics.
async fn call(relay_only: bool, secs: u64, codec: Option<VideoCodec>) -> Result<Value> {
    let cluster = Cluster::start(&[]).await?;
    cluster.user("alice").await?;
    cluster.user("bob").await?;
    let mut extra = vec!["--test-source"];
    if let Some(codec) = codec {
        extra.extend(["--video-codec", codec.name()]);
    }
    if relay_only {
        extra.push("--relay-only");
    }
    let alice = cluster.node("alice", &extra).await?;
    extra.push("--auto-answer");
    let _bob = cluster.node("bob", &extra).await?;
    alice.reach("bob", if relay_only { "relayed" } else { "direct" }).await?;
    let placed = alice
        .call(&ControlRequest::Call { to: "bob".into(), audio_only: false, test_source: true })
        .await
        .context("placing the call")?;
    let id = placed["call"].as_str().unwrap_or_default().to_owned();
    let status = || alice.call(&ControlRequest::CallStatus);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while status().await?["state"] != "connected" {
        if tokio::time::Instant::now() > deadline {
            bail!("the call never connected: {}", status().await?);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    alice.call(&ControlRequest::HangUp).await?;
    for _ in 0..100 {
        let v = status().await?;
        if v["call"] == id.as_str() && v["state"] == "ended" {
            return Ok(v["stats"].clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the call did not end after hanging up")
}

/// `call-latency` (`relay_only`: `call-relayed`): an audio row, and a
/// video row per codec (the relayed call in the codec calls choose).
pub async fn call_latency(relay_only: bool, secs: u64) -> Result<Vec<Row>> {
    let codecs = match relay_only {
        true => vec![None],
        false => skein_media::codecs::usable(&VideoCodec::ALL)?.into_iter().map(Some).collect(),
    };
    let name = if relay_only { "call-relayed" } else { "call-latency" };
    let mut rows = Vec::new();
    for (i, codec) in codecs.into_iter().enumerate() {
        let stats = call(relay_only, secs, codec).await?;
        let used = stats["video_codec"].as_str().and_then(|c| c.parse().ok()).unwrap_or(VideoCodec::Vp8);
        if codec.is_some_and(|c| c != used) {
            bail!("the call was to use {codec:?} video but used {used}");
        }
        let (base_audio, base_video) = baseline(secs.min(10), used).await?;
        let path = stats["path"].as_str().unwrap_or("?").to_owned();
        let measured = format!(
            "{secs} s call, path {path}, {used} video: {} pictures decoded, {} audio gaps over 100 ms, last second {} kbit/s video at {} fps, loss {}%.",
            stats["frames_received"], stats["audio_gaps"], stats["video_kbps"], stats["fps"], stats["loss_pct"]
        );
        let video = ("video", format!("video {}", used.label()), base_video, VIDEO_P99_MS);
        let audio = ("audio", "audio".to_owned(), base_audio, AUDIO_P99_MS);
        // The audio is the same whatever the video: one row, from the first call.
        let kinds = if i == 0 { vec![audio, video] } else { vec![video] };
        for (kind, label, base, target) in kinds {
            let skein = Spread::from_stats(&stats["call_latency_ms"][kind]);
            rows.push(Row {
                scenario: format!("{name} ({label}, glass to glass)"),
                skein: skein.show(),
                baseline: format!("{} (bare GStreamer, no network)", base.show()),
                ratio: format!("{:+.1} ms at p99", skein.p99 - base.p99),
                target: format!("p99 ≤ {target:.0} ms"),
                met: Some(skein.n > 0 && skein.p99 <= target),
                measured: measured.clone(),
            });
        }
    }
    Ok(rows)
}
