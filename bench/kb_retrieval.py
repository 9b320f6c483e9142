#!/usr/bin/env python3
"""Knowledge retrieval top-1 accuracy on held-out callers' questions, per industry and language.

The questions (bench/data/kb_questions.yaml) were written apart from the articles: none repeats an article's
title, example questions or wording. A second, fresh Mandarin set (bench/data/kb_questions_zh_fresh.yaml, ~10
callers' questions per industry, written apart from the articles and the first set) is scored and reported apart. Each is searched in its industry's collection, in its language, with no tag
filter (the hardest case: an answer: node usually narrows by tags), as `voicebot kb search` and the answer action
do. Also printed: the score of correct and wrong top-1 answers (to choose an answer's min_score), off-topic
questions' best scores, the time a search takes, and the time the index takes to build: cold (every article
encoded) and again from the vector cache the cold build filled (what a restarted server pays).

    bench/kb_retrieval.py [--knowledge-dir knowledge] [--verbose]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.knowledge.base import load_knowledge  # noqa: E402
from voicebot.knowledge.vectorcache import VectorCache  # noqa: E402
from voicebot.nlu.embeddings import available_encoder, clear_caches, encoder, encoder_names  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "bench" / "data" / "kb_questions.yaml"
FRESH_ZH = REPO / "bench" / "data" / "kb_questions_zh_fresh.yaml"  # a second Mandarin set, reported apart
DAY = dt.date(2026, 12, 7)
OFF_TOPIC = {
    "en": ["what's the weather like in Shanghai tomorrow", "can you recommend a good pizza place",
           "who won the football match last night", "play me some music please",
           "how do I reset my wifi router"],
    "zh": ["明天上海天气怎么样", "推荐一家好吃的披萨店", "昨晚足球比赛谁赢了", "给我放首歌", "家里的路由器怎么重启"],
}


def score(kb: Any, sets: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """Top-1 of each question set (collection -> lang -> questions), printed per set; scores and times kept."""
    totals = {"en": [0, 0], "zh": [0, 0]}
    right_scores: list[float] = []
    wrong_scores: list[float] = []
    times: list[float] = []
    per_set: dict[str, float] = {}
    for collection, languages in sets.items():
        for lang, questions in languages.items():
            correct = 0
            for item in questions:
                expected = f"{item['article']}-{lang}"
                begin = time.perf_counter()
                hits = kb.search(item["q"], lang, collection=collection, day=DAY, k=3)
                times.append((time.perf_counter() - begin) * 1000)
                top = hits[0] if hits else None
                ok = top is not None and top.article.id == expected
                correct += ok
                (right_scores if ok else wrong_scores).append(top.score if top else 0.0)
                if verbose or not ok:
                    found = f"{top.article.id} {top.score:.3f}" if top else "nothing"
                    print(f"  {'ok  ' if ok else 'MISS'} [{collection}/{lang}] {item['q']} -> {found}"
                          + ("" if ok else f" (expected {expected})"))
            totals[lang][0] += correct
            totals[lang][1] += len(questions)
            per_set[f"{collection}/{lang}"] = correct / len(questions)
            print(f"{collection:10s} {lang}: top-1 {correct}/{len(questions)} = {correct / len(questions):.1%}")
    return {"totals": totals, "per_set": per_set, "right": right_scores, "wrong": wrong_scores, "times": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knowledge-dir", type=Path, default=REPO / "knowledge")
    parser.add_argument("--verbose", action="store_true", help="print every question")
    args = parser.parse_args()
    sets = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
    with BenchRecord("kb_retrieval") as record:
        with tempfile.TemporaryDirectory() as directory:
            load_knowledge(args.knowledge_dir, encoders={})  # parse once and load the models: the timings below
            specs = [available_encoder(lang) for lang in ("en", "zh")]
            for name in {name for spec in specs if spec for name in encoder_names(spec)}:
                encoder(name).encode(["warm up"])  # are the indexing alone (a server loads them for its NLU too)
            started = time.perf_counter()
            kb = load_knowledge(args.knowledge_dir, cache=VectorCache(Path(directory)))
            cold_s = time.perf_counter() - started
            clear_caches()  # the encoders' in-memory text cache: the rebuild reads the disk cache alone
            started = time.perf_counter()
            cached = VectorCache(Path(directory))
            kb = load_knowledge(args.knowledge_dir, cache=cached)
            cached_s = time.perf_counter() - started
        print(f"{len(kb)} articles indexed in {cold_s:.1f} s, from the vector cache in {cached_s:.2f} s "
              f"({cached.hits} entries read, {cached.misses} encoded; "
              f"encoders: {', '.join(f'{lang}={ix.encoders}' for lang, ix in kb.index.by_lang.items())})")
        kb.search("warm up", "en")
        kb.search("预热", "zh")
        scored = score(kb, sets, args.verbose)
        totals, per_set, right_scores, wrong_scores, times = (scored["totals"], scored["per_set"], scored["right"],
                                                              scored["wrong"], scored["times"])
        print(f"fresh Mandarin set ({FRESH_ZH.name}, scored apart):")
        fresh = score(kb, yaml.safe_load(FRESH_ZH.read_text(encoding="utf-8")), args.verbose)
        fresh_right, fresh_count = fresh["totals"]["zh"]
        off = {lang: [max((h.score for h in kb.search(q, lang, day=DAY, k=1)), default=0.0) for q in qs]
               for lang, qs in OFF_TOPIC.items()}
        all_right = sum(t[0] for t in totals.values())
        all_count = sum(t[1] for t in totals.values())
        accuracy = all_right / all_count
        p50 = statistics.median(times)
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        print(f"overall top-1 {all_right}/{all_count} = {accuracy:.1%}; "
              + "; ".join(f"{lang} {r}/{n} = {r / n:.1%}" for lang, (r, n) in totals.items()))
        print(f"score of correct top-1: min {min(right_scores):.3f}, p10 "
              f"{sorted(right_scores)[len(right_scores) // 10]:.3f}, median {statistics.median(right_scores):.3f}")
        if wrong_scores:
            print(f"score of wrong top-1: max {max(wrong_scores):.3f}, median {statistics.median(wrong_scores):.3f}")
        for lang, scores in off.items():
            print(f"off-topic questions ({lang}), best score: " + ", ".join(f"{s:.3f}" for s in scores))
        print(f"search time per question: p50 {p50:.1f} ms, p95 {p95:.1f} ms (one thread)")
        print(f"fresh Mandarin set: zh top-1 {fresh_right}/{fresh_count} = {fresh_right / fresh_count:.1%}"
              + (f"; score of wrong top-1: max {max(fresh['wrong']):.3f}" if fresh["wrong"] else ""))
        record.data.update(top1=accuracy, per_set=per_set, p50_ms=p50, p95_ms=p95,
                           questions=all_count, articles=len(kb), index_cold_s=cold_s, index_cached_s=cached_s,
                           min_correct_score=min(right_scores), max_off_topic=max(max(s) for s in off.values()),
                           fresh_zh_top1=fresh_right / fresh_count, fresh_zh_questions=fresh_count,
                           fresh_zh_per_set=fresh["per_set"])
        langs = ", ".join(f"{lang} {r / n:.1%}" for lang, (r, n) in totals.items())
        worst = min(per_set, key=lambda key: per_set[key])
        record.row(f"Knowledge retrieval top-1 on held-out callers' questions ({all_count} questions, 5 industries "
                   f"× en/zh, {len(kb)} articles; TF-IDF + sentence vectors)",
                   f"**{accuracy:.1%}** ({langs}; lowest {worst} {per_set[worst]:.0%}); search p50 {p50:.1f} ms")
        fresh_worst = min(fresh["per_set"], key=lambda key: fresh["per_set"][key])
        record.row(f"Knowledge retrieval top-1 on a second, fresh held-out Mandarin set ({fresh_count} questions, "
                   "5 industries; written apart from the articles and the first set)",
                   f"**{fresh_right / fresh_count:.1%}** (lowest {fresh_worst} {fresh['per_set'][fresh_worst]:.0%})")
        record.row(f"Knowledge index build ({len(kb)} articles, all encoders; loaded box)",
                   f"{cold_s:.1f} s encoding every article; **{cached_s:.2f} s** from the vector cache "
                   "(a restart, or a reload of unchanged articles)")


if __name__ == "__main__":
    main()
