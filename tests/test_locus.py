"""The region browser views open at: the strongest call with a motif hit beside it (hand-made BEDs)."""

import gzip
import json

from genometracks.browser.export import export_run
from genometracks.browser.locus import default_region, igvjs_locus, jbrowse_locus, ucsc_locus

SIZES = {"chrA": 50_000, "chrB": 9_000}


def _write(tracks, peaks, hits=None):
    tracks.mkdir(parents=True, exist_ok=True)
    (tracks / "tss_peaks.bed").write_text("".join(f"{c}\t{s}\t{s + 1}\tTSS\t{score}\t{strand}\n" for c, s, score, strand in peaks))
    if hits is not None:
        with gzip.open(tracks / "motif_hits.bed.gz", "wt") as out:
            out.writelines(f"{h[0]}\t{h[1]}\t{h[2]}\thit\t1000\t{h[3] if len(h) > 3 else '+'}\n" for h in hits)


def test_strongest_call_with_a_hit_in_its_window_wins(tmp_path):
    # chrA:30000 is the strongest call but has no hit within 1 kb; chrB:4000 (score 500) has one at 3,100-3,107
    _write(tmp_path, [("chrA", 30_000, 900, "+"), ("chrB", 4_000, 500, "-"), ("chrA", 10_000, 100, "+")], [("chrB", 3_100, 3_107)])
    assert default_region(tmp_path, SIZES) == ("chrB", 3_000, 5_000)


def test_a_same_strand_hit_in_the_promoter_beats_a_stronger_call_with_a_hit_nearby(tmp_path):
    calls = [("chrA", 30_000, 900, "+"), ("chrA", 10_000, 500, "-"), ("chrB", 5_000, 300, "+")]
    # chrA:30000 has a + hit 400 nt upstream (in its window, not its promoter); chrA:10000 (-) has a + hit
    # 20 nt upstream (wrong strand); chrB:5000 (+) has a + hit ending 5 nt before its TSS (0-based 4995)
    hits = [("chrA", 29_593, 29_600, "+"), ("chrA", 10_015, 10_022, "+"), ("chrB", 4_988, 4_995, "+")]
    _write(tmp_path, calls, hits)
    assert default_region(tmp_path, SIZES) == ("chrB", 4_000, 6_000)
    # on the minus strand, upstream is to the right: a - hit at 10,015-10,022 is in chrA:10000's promoter
    _write(tmp_path, calls, [*hits[:1], ("chrA", 10_015, 10_022, "-")])
    assert default_region(tmp_path, SIZES) == ("chrA", 9_000, 11_000)
    # a hit 61 nt or more upstream is outside the 60-nt promoter: the stronger call with a hit nearby wins
    _write(tmp_path, calls, [*hits[:1], ("chrB", 4_932, 4_939, "+")])
    assert default_region(tmp_path, SIZES) == ("chrA", 29_000, 31_000)


def test_a_call_with_sigma70_boxes_beside_its_head_hit_comes_first(tmp_path):
    # both calls have a same-strand head hit in their promoter; only the weaker one has σ70 boxes (named by
    # the boxes' tss column, the 10th); boxes of a call on another contig of the same name do not count
    calls = [("chrA", 30_000, 900, "+", "TSS_a"), ("chrB", 5_000, 300, "-", "TSS_b")]
    tracks = tmp_path
    _write(tracks, [c[:4] for c in calls], [("chrA", 29_980, 29_987, "+"), ("chrB", 5_010, 5_017, "-")])
    (tracks / "tss_peaks.bed").write_text("".join(f"{c}\t{s}\t{s + 1}\t{n}\t{score}\t{st}\n" for c, s, score, st, n in calls))

    def boxes(chrom: str, name: str) -> None:
        with gzip.open(tracks / "sigma70_boxes.bed.gz", "wt") as out:
            out.write(f"{chrom}\t5007\t5013\t-10\t300\t-\t5007\t5013\t0,114,178\t{name}\tTATAAT\t-12\t17\t6\t0.001\t0.04\n")

    assert default_region(tracks, SIZES) == ("chrA", 29_000, 31_000)  # no boxes: the strongest call
    boxes("chrB", "TSS_b")
    assert default_region(tracks, SIZES) == ("chrB", 4_000, 6_000)
    boxes("chrA", "TSS_b")
    assert default_region(tracks, SIZES) == ("chrA", 29_000, 31_000)


def test_hit_just_outside_the_window_does_not_count(tmp_path):
    # the window around chrA:10000 is [9000, 11000): a hit ending at 9000 (0-based half-open) lies outside it
    _write(tmp_path, [("chrA", 30_000, 900, "+"), ("chrA", 10_000, 100, "+")], [("chrA", 8_993, 9_000)])
    assert default_region(tmp_path, SIZES) == ("chrA", 29_000, 31_000)
    _write(tmp_path, [("chrA", 30_000, 900, "+"), ("chrA", 10_000, 100, "+")], [("chrA", 8_994, 9_001)])
    assert default_region(tmp_path, SIZES) == ("chrA", 9_000, 11_000)


def test_without_hits_the_strongest_call_and_windows_stay_inside_the_contig(tmp_path):
    _write(tmp_path, [("chrB", 8_900, 50, "+"), ("chrA", 200, 40, "-")])
    assert default_region(tmp_path, SIZES) == ("chrB", 7_000, 9_000)  # shifted left to end at the contig's end
    _write(tmp_path, [("chrA", 200, 40, "-")], [])
    assert default_region(tmp_path, SIZES) == ("chrA", 0, 2_000)
    assert default_region(tmp_path, {"tiny": 700, **SIZES}, width=2_000) == ("chrA", 0, 2_000)
    _write(tmp_path, [("tiny", 300, 40, "-")], [])
    assert default_region(tmp_path, {"tiny": 700}) == ("tiny", 0, 700)


def test_without_calls_the_first_20_kb(tmp_path):
    assert default_region(tmp_path, SIZES) == ("chrA", 0, 20_000)
    assert default_region(tmp_path, {"chrB": 9_000}) == ("chrB", 0, 9_000)


def test_locus_text_is_one_based_and_end_inclusive():
    assert ucsc_locus(("chrA", 0, 2_000)) == "chrA:1-2000"
    assert jbrowse_locus(("chrA", 0, 2_000)) == "chrA:1..2000"


def test_igvjs_locus_keeps_a_contig_name_with_colons_whole():
    # igv.js reads 'chrom:start-end' up to the first ':'; a name holding ':' goes tab-separated
    assert igvjs_locus("chrA:1-2000") == "chrA:1-2000"
    assert igvjs_locus("NC_000913.3:1,001-3,000") == "NC_000913.3:1,001-3,000"
    assert igvjs_locus("scaffold:1:1-2000") == "scaffold:1\t1\t2000"
    assert igvjs_locus("a:b:c:10-20") == "a:b:c\t10\t20"
    assert igvjs_locus("chrA") == "chrA"  # not a locus: as given


def test_a_snapshot_locus_may_name_a_contig_with_colons(tmp_path):
    import json
    import re

    from genometracks.browser.snapshot import _LOCUS, HIDE_STATUS, _snapshot_page

    assert _LOCUS.match("scaffold:1:1001-3000") and not _LOCUS.match("chrA 1-300")
    page = tmp_path / "index.html"
    page.write_text('<head></head><script type="application/json" id="igv-config">{"locus": "x:1-2"}</script>')
    shown = _snapshot_page(page, "scaffold:1:1001-3000")
    config = json.loads(re.search(r'id="igv-config">(.*)</script>', shown.read_text(), re.S).group(1))
    assert config["locus"] == "scaffold:1\t1001\t3000"
    # the picture leaves out the page's status line (it was printed under every snapshot, README image too)
    assert HIDE_STATUS + "</head>" in shown.read_text() and HIDE_STATUS in _snapshot_page(page, None).read_text()


def test_hub_igv_and_jbrowse_open_at_the_same_call(tmp_path):
    from tests.browser_run import make_run

    run = tmp_path / "run"
    fasta, sizes = make_run(run)
    region = default_region(run / "tracks", sizes)
    chrom, start, end = region
    with gzip.open(run / "tracks" / "tss_peaks.bed.gz", "rt") as handle:
        peaks = [line.split("\t") for line in handle]
    with gzip.open(run / "tracks" / "motif_hits.bed.gz", "rt") as handle:
        hits = [line.split("\t") for line in handle]
    assert any(p[0] == chrom and start <= int(p[1]) < end for p in peaks)  # a call ...
    assert any(h[0] == chrom and int(h[1]) < end and int(h[2]) > start for h in hits)  # ... with a motif hit
    export_run(run, fasta, sizes, {"genome_mode": "assembly"}, "Test organism")
    assert f"defaultPos {ucsc_locus(region)}\n" in (run / "hub" / "genomes.txt").read_text()
    assert f'locus="{ucsc_locus(region)}"' in (run / "igv" / "session.xml").read_text()
    views = json.loads((run / "jbrowse" / "config.json").read_text())
    assert jbrowse_locus(region) in json.dumps(views)
