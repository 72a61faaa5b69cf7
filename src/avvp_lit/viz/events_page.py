"""``events.html``: one self-contained page showing parsed events on their videos.

No network and no CDN: the CSS, the script and the data are inline; a video is referenced
by its path relative to the page. Per video: the player (when there is a video), then
three lanes (audio, visual, audio-visual) with one row per class that has an event in
that lane; events are bars labelled with their score, clicking one seeks the video to its
onset; each row carries the per-segment probability as a faint heat strip behind it; a
playhead follows the video. A list on the left picks the video shown, so the page stays
usable at thousands of videos (one player, drawn on demand).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from avvp_lit.classes import CLASSES, EVENT_MODALITIES


@dataclass(frozen=True)
class PageVideo:
    """One video's events and probabilities on its own time axis.

    ``bounds`` (T + 1,) segment borders in seconds; ``prob_audio``/``prob_visual`` (T, 25)
    per-segment probabilities; ``events`` the records of :func:`event_records`'s shape with
    onsets and offsets in seconds; ``video`` the player's source, relative to the page.
    """

    name: str
    bounds: np.ndarray
    prob_audio: np.ndarray
    prob_visual: np.ndarray
    events: Sequence[Mapping[str, Any]]
    video: str | None = None


def _video_json(item: PageVideo) -> dict[str, Any]:
    prob = {
        "audio": item.prob_audio,
        "visual": item.prob_visual,
        "audio-visual": np.minimum(item.prob_audio, item.prob_visual),
    }
    return {
        "name": item.name,
        "video": item.video,
        "bounds": [round(float(b), 3) for b in item.bounds],
        # (T, 25) -> per modality, per class: T probabilities with 3 decimals
        "prob": {m: np.round(p.T.astype(float), 3).tolist() for m, p in prob.items()},
        "events": [
            {
                "class": e["class"],
                "modality": e["modality"],
                "onset": float(e["onset"]),
                "offset": float(e["offset"]),
                "score": float(e["score"]),
            }
            for e in item.events
        ],
    }


STYLE = """
body{font:14px system-ui,sans-serif;margin:0;display:flex;height:100vh;color:#222}
#side{flex:none;width:260px;border-right:1px solid #ddd;display:flex;flex-direction:column}
#side header{padding:10px;border-bottom:1px solid #ddd;font-size:12px;line-height:1.5;
 overflow-wrap:anywhere}
#side input{margin:8px;padding:4px}
#list{overflow:auto;flex:1;margin:0;padding:0;list-style:none}
#list li{padding:4px 10px;cursor:pointer;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#list li.on{background:#e3ecfa}
#list li small{color:#888}
#main{flex:1;overflow:auto;padding:12px 20px}
video{width:480px;max-width:100%;max-height:360px;display:block;background:#000}
.timeline{position:relative;margin-top:10px}
.lane h3{margin:12px 0 4px;font-size:13px;text-transform:uppercase;color:#555}
.row{display:flex;align-items:center;height:22px}
.row .label{width:170px;font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{position:relative;flex:1;height:18px;background:#f6f6f6}
.heat{position:absolute;top:0;bottom:0;background:#1f77b4}
.event{position:absolute;top:2px;bottom:2px;border-radius:3px;color:#fff;font-size:11px;
 line-height:14px;padding-left:3px;overflow:hidden;cursor:pointer;box-sizing:border-box}
.event.audio{background:#d62728}.event.visual{background:#2ca02c}
.event.audio-visual{background:#9467bd}
.axis{position:relative;height:16px;margin-left:170px;font-size:10px;color:#777}
.axis span{position:absolute;transform:translateX(-50%)}
#playhead{position:absolute;top:0;bottom:0;width:2px;background:#ff7f0e;pointer-events:none}
.none{color:#888;margin:12px 0}
"""

SCRIPT = """
const data = JSON.parse(document.getElementById('avvp-data').textContent);
const list = document.getElementById('list'), main = document.getElementById('main');
const filter = document.getElementById('filter');
let current = null;
function drawList() {
  const q = filter.value.toLowerCase();
  list.innerHTML = '';
  data.videos.forEach((v, i) => {
    if (q && !v.name.toLowerCase().includes(q)) return;
    const li = document.createElement('li');
    li.dataset.index = i;
    li.innerHTML = v.name + ' <small>' + v.events.length + ' events</small>';
    if (i === current) li.className = 'on';
    li.onclick = () => show(i);
    list.appendChild(li);
  });
}
function pct(t, v) {
  const b = v.bounds, span = b[b.length - 1] - b[0];
  return (100 * (t - b[0]) / span) + '%';
}
function show(i) {
  current = i;
  drawList();
  const v = data.videos[i];
  main.innerHTML = '<h2 id="title"></h2>';
  document.getElementById('title').textContent = v.name;
  let player = null;
  if (v.video) {
    player = document.createElement('video');
    player.id = 'player'; player.controls = true; player.preload = 'auto'; player.src = v.video;
    main.appendChild(player);
  }
  const timeline = document.createElement('div');
  timeline.className = 'timeline';
  main.appendChild(timeline);
  const axis = document.createElement('div');
  axis.className = 'axis';
  const end = v.bounds[v.bounds.length - 1];
  for (let t = 0; t <= end + 1e-6; t += Math.max(1, Math.ceil(end / 20))) {
    const s = document.createElement('span'); s.style.left = pct(t, v); s.textContent = t + ' s';
    axis.appendChild(s);
  }
  timeline.appendChild(axis);
  const tracks = [];
  data.modalities.forEach(m => {
    const lane = document.createElement('div');
    lane.className = 'lane'; lane.dataset.modality = m;
    lane.innerHTML = '<h3>' + m + '</h3>';
    const classes = [...new Set(v.events.filter(e => e.modality === m).map(e => e.class))];
    classes.sort((a, b) => data.classes.indexOf(a) - data.classes.indexOf(b));
    if (!classes.length) lane.innerHTML += '<div class="none">no event</div>';
    classes.forEach(c => {
      const row = document.createElement('div'); row.className = 'row';
      const label = document.createElement('div'); label.className = 'label'; label.textContent = c;
      const track = document.createElement('div'); track.className = 'track';
      const p = v.prob[m][data.classes.indexOf(c)];
      p.forEach((value, k) => {
        const h = document.createElement('div'); h.className = 'heat';
        h.style.left = pct(v.bounds[k], v);
        h.style.width = 'calc(' + pct(v.bounds[k + 1], v) + ' - ' + pct(v.bounds[k], v) + ')';
        h.style.opacity = (0.35 * value).toFixed(3);
        h.title = c + ' ' + m + ' ' + v.bounds[k] + '-' + v.bounds[k + 1] + ' s: p=' + value;
        track.appendChild(h);
      });
      v.events.filter(e => e.modality === m && e.class === c).forEach(e => {
        const bar = document.createElement('div');
        bar.className = 'event ' + m;
        Object.assign(bar.dataset,
          {cls: e.class, modality: m, onset: e.onset, offset: e.offset, score: e.score});
        bar.style.left = pct(e.onset, v);
        bar.style.width = 'calc(' + pct(e.offset, v) + ' - ' + pct(e.onset, v) + ')';
        bar.textContent = e.score.toFixed(2);
        bar.title = c + ', ' + m + ', ' + e.onset + '-' + e.offset + ' s, score ' + e.score;
        bar.onclick = () => seek(e.onset);
        track.appendChild(bar);
      });
      row.appendChild(label); row.appendChild(track); lane.appendChild(row);
      tracks.push(track);
    });
    timeline.appendChild(lane);
  });
  const head = document.createElement('div');
  head.id = 'playhead';
  timeline.appendChild(head);
  function place(t) {
    const ref = tracks.length ? tracks[0] : axis;
    const box = ref.getBoundingClientRect(), outer = timeline.getBoundingClientRect();
    const b = v.bounds, frac = Math.min(1, Math.max(0, (t - b[0]) / (b[b.length - 1] - b[0])));
    head.style.left = (box.left - outer.left + frac * box.width) + 'px';
    head.dataset.time = t;
  }
  function seek(t) {
    if (player) { player.currentTime = t; }
    place(t);
  }
  if (player) {
    const follow = () => {
      place(player.currentTime);
      if (!player.paused) requestAnimationFrame(follow);
    };
    player.addEventListener('timeupdate', () => place(player.currentTime));
    player.addEventListener('seeked', () => place(player.currentTime));
    player.addEventListener('play', () => requestAnimationFrame(follow));
  }
  place(0);
}
filter.oninput = drawList;
if (data.videos.length) show(0); else main.textContent = 'no videos';
"""


def events_page(
    videos: Sequence[PageVideo],
    *,
    model: str,
    checkpoint: str,
    protocol: Mapping[str, Any],
) -> str:
    """The whole page as one HTML string (videos in the order given)."""
    payload = {
        "classes": list(CLASSES),
        "modalities": list(EVENT_MODALITIES),
        "videos": [_video_json(v) for v in videos],
    }
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    thresholds = ", ".join(
        f"{k} {protocol[k]}"
        for k in ("gating", "video_threshold", "segment_threshold")
        if k in protocol
    )
    if protocol.get("class_thresholds"):
        thresholds += ", per-class thresholds"
    header = (
        f"<b>avvp-parse events</b><br>model: {html.escape(model)}<br>"
        f"checkpoint: {html.escape(checkpoint)}<br>protocol: {html.escape(thresholds)}<br>"
        f"{len(videos)} video{'' if len(videos) == 1 else 's'}"
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>avvp-parse events</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<nav id='side'><header>{header}</header>"
        "<input id='filter' placeholder='filter videos'><ul id='list'></ul></nav>"
        "<main id='main'></main>"
        f"<script type='application/json' id='avvp-data'>{data}</script>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
