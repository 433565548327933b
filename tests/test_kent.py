"""Checked by UCSC's own tools: hubCheck -checkSettings on the assembly and GenArk hubs of a complete
run, and the kent readers (bigWigToBedGraph, bigBedToBed, twoBitToFa) reading back exactly what we
wrote. Also: NCBI-style FASTA names become accessions everywhere, the original kept in chromAlias."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests import browser_run as br
from tests.conftest import ECOLI
from tests.kent import KENT, assert_hub_clean, hubcheck, kent, needs_kent


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kent")
    fasta, sizes, written = br.exported_run(root, "the hub tests need no browser")
    return root / "run", fasta, sizes, written


def _genome_dir(hub: Path) -> Path:
    return next(p.parent for p in hub.glob("*/trackDb.txt"))


def test_ncbi_names_become_accessions_in_every_output(run):
    import py2bit
    import pyBigWig

    out, fasta, sizes, _ = run
    assert list(sizes) == [br.CHROM, br.PLASMID]
    gdir = _genome_dir(out / "hub")
    for bw in gdir.glob("*.bw"):
        handle = pyBigWig.open(str(bw))
        assert dict(handle.chroms()) == br.LENGTHS
        handle.close()
    tb = py2bit.open(str(gdir / f"{gdir.name}.2bit"))
    assert tb.chroms() == br.LENGTHS
    tb.close()
    fai = (out / "igv" / "genome").glob("*.fai")
    assert [line.split("\t")[0] for line in next(fai).read_text().splitlines()] == [br.CHROM, br.PLASMID]
    alias = (gdir / "chromAlias.txt").read_text()
    assert br.HEADERS[br.CHROM] in alias and br.HEADERS[br.PLASMID] in alias
    assert "chromAlias" in (out / "hub" / "genomes.txt").read_text()


def test_hub_conventions(run):
    out, *_ = run
    hub_txt = (out / "hub" / "hub.txt").read_text()
    assert "descriptionUrl description.html" in hub_txt
    page = (out / "hub" / "description.html").read_text()
    assert "report.html" in page and "TSS probability" in page
    trackdb = (_genome_dir(out / "hub") / "trackDb.txt").read_text()
    assert "graphType " not in trackdb and "graphTypeDefault bar" in trackdb
    block = trackdb.split("\n\n")[0]
    assert "container multiWig" in block and "windowingFunction maximum" in block
    signed = [b for b in trackdb.split("\n\n") if "graphTypeDefault bar" in b]  # attribution, DeepLIFT: signed values
    assert signed and all("windowingFunction mean+whiskers" in b for b in signed)


def test_chrom_alias_rows():
    from genometracks.browser.chromalias import chrom_aliases

    table = chrom_aliases({"NC_000913.3": 4641652}, {"NC_000913.3": "gi|1|ref|NC_000913.3|"})
    assert (
        table["NC_000913.3"]
        == {"genbank": "U00096.3", "ucsc": "chr", "ensembl": "Chromosome", "refseq": "NC_000913.3", "fasta": "gi|1|ref|NC_000913.3|"}
        or table["NC_000913.3"]["genbank"] == "U00096.3"
    )
    assert chrom_aliases({"chrA": 5, "A": 5})["chrA"] == {}  # never shadow a real contig
    table = chrom_aliases({"chr2": 5, "chrX": 5, "plasmid": 5, "chromosome": 5, "chrom2": 5})
    assert [table[n].get("ucsc") for n in table] == ["2", "X", "chrplasmid", None, None]  # no 'omosome'


def test_contig_name_of_ncbi_headers():
    from genometracks.genome.sequence import contig_name

    assert contig_name("gi|49175990|ref|NC_000913.2|") == "NC_000913.2"
    assert contig_name("gi|48994873|gb|U00096.2|") == "U00096.2"
    assert contig_name("ref|NZ_CP009072.1|") == "NZ_CP009072.1"
    assert contig_name("lcl|contig_7") == "contig_7"
    assert contig_name("NC_000913.3") == "NC_000913.3" and contig_name("chrA") == "chrA"
    # not NCBI: an assembler's names are kept whole (Canu + Arrow: two contigs were both 'arrow')
    assert contig_name("tig00000001|arrow") == "tig00000001|arrow" and contig_name("sampleA|contig_1") == "sampleA|contig_1"
    assert contig_name("gi|545778205|") == "545778205"


def test_an_arrow_polished_assembly_with_gaps_and_x_masking_opens_and_writes_a_2bit(tmp_path):
    import py2bit

    from genometracks.formats.twobit import write_twobit
    from genometracks.genome.sequence import Genome

    fasta = tmp_path / "arrow.fa"
    fasta.write_text(">tig00000001|arrow\n" + "ACGT" * 50 + "\n>tig00000002|arrow\nACGTXXXXXACGT-----ACGT..AC\n")
    genome = Genome.open(fasta)
    assert genome.chrom_sizes() == {"tig00000001|arrow": 200, "tig00000002|arrow": 26}
    write_twobit(tmp_path / "arrow.2bit", fasta)  # '-' refused before: predict worked, the hub's .2bit failed
    with py2bit.open(str(tmp_path / "arrow.2bit")) as tb:
        assert tb.chroms() == {"tig00000001|arrow": 200, "tig00000002|arrow": 26}
        assert tb.sequence("tig00000002|arrow") == "ACGTNNNNNACGTNNNNNACGTNNAC"


@needs_kent
def test_hubcheck_accepts_assembly_and_genark_hubs(run, tmp_path):
    from genometracks.browser.export import run_hub_tracks
    from genometracks.browser.hub import HubError, write_hub

    out, *_ = run
    assert_hub_clean(out / "hub")
    # the GenArk hub of the same tracks on E. coli-sized contigs (as the E. coli run writes it)
    from genometracks.formats.bigwig import write_bigwig

    sizes = {"NC_000913.3": 4641652}
    tracks = tmp_path / "tracks"
    for strand in ("plus", "minus"):
        write_bigwig(tracks / f"tss.{strand}.bw", sizes, {"NC_000913.3": np.full(4641652, 0.001, np.float32)})
    hub = write_hub(tmp_path / "hub_genark", "genark", sizes, run_hub_tracks(tracks), overview_html="<p>x</p>").parent
    assert_hub_clean(hub)
    with pytest.raises(HubError, match="UCSC reads defaultPos only from an assembly hub"):  # not dropped in silence
        write_hub(
            tmp_path / "hub_genark2", "genark", sizes, run_hub_tracks(tracks), overview_html="<p>x</p>", default_pos="NC_000913.3:1-2000"
        )


@needs_kent
def test_hubcheck_and_validate_hub_find_the_same_setting_problems(run, tmp_path):
    from genometracks.browser.validate import validate_hub

    out, *_ = run
    hub = tmp_path / "hub"
    shutil.copytree(out / "hub", hub)
    trackdb = _genome_dir(hub) / "trackDb.txt"
    trackdb.write_text(trackdb.read_text().replace("graphTypeDefault bar", "graphType bar"))
    (hub / "hub.txt").write_text(
        "".join(line for line in (hub / "hub.txt").read_text().splitlines(True) if not line.startswith("descriptionUrl"))
    )
    result = hubcheck(hub)
    ours = "\n".join(validate_hub(hub))
    assert result.returncode != 0
    for needle in (
        "Setting 'graphType' is unknown/unsupported (did you mean 'graphTypeDefault' ?)",
        "missing hub overview description page (descriptionUrl setting)",
    ):
        assert needle in result.stdout + result.stderr and needle in ours


@needs_kent
def test_settings_table_matches_the_spec_hubcheck_uses():
    import html

    from genometracks.browser.trackdb_settings import SETTINGS

    spec = {}
    for line in (KENT / "spec" / "settings-v3.tsv").read_text().splitlines():
        if line.strip():
            level, names = line.split("\t")
            spec.update({n: level for n in html.unescape(names).split()})
    assert SETTINGS == spec


def _bedgraph_values(path: Path, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    values = {c: np.full(n, np.nan, np.float32) for c, n in sizes.items()}
    for line in path.read_text().splitlines():
        chrom, start, end, value = line.split("\t")
        values[chrom][int(start) : int(end)] = np.float32(value)
    return values


@needs_kent
def test_kent_readers_read_back_exactly_what_we_wrote(run, tmp_path):
    out, fasta, sizes, _ = run
    gdir = _genome_dir(out / "hub")
    for strand, name in (("+", "tss_plus.bw"), ("-", "tss_minus.bw")):
        result = kent("bigWigToBedGraph", gdir / name, tmp_path / "out.bedGraph")
        assert result.returncode == 0, result.stderr
        got = _bedgraph_values(tmp_path / "out.bedGraph", sizes)
        for chrom, expected in br.signal(strand).items():
            np.testing.assert_array_equal(got[chrom], expected)
    for stem in ("tss_peaks", "motif_hits"):
        result = kent("bigBedToBed", gdir / f"{stem}.bb", tmp_path / "out.bed")
        assert result.returncode == 0, result.stderr
        with gzip.open(out / "tracks" / f"{stem}.bed.gz", "rt") as handle:
            assert (tmp_path / "out.bed").read_text() == handle.read()
    result = kent("bigBedToBed", gdir / "tss_sigma.bb", tmp_path / "sigma.bed")
    rows = [line.split("\t") for line in (tmp_path / "sigma.bed").read_text().splitlines()]
    assert [(r[0], int(r[1]), r[5], r[8], r[9]) for r in rows] == [
        (br.CHROM, int(p.start), p.strand, "213,94,0" if p.strand == "+" else "204,121,167", "sigma70" if p.strand == "+" else "sigma38")
        for p in br.peak_frame().itertuples()
    ]
    result = kent("twoBitToFa", gdir / f"{gdir.name}.2bit", tmp_path / "out.fa")
    assert result.returncode == 0, result.stderr
    records = {}
    for chunk in (tmp_path / "out.fa").read_text().split(">")[1:]:
        head, _, body = chunk.partition("\n")
        records[head.split()[0]] = body.replace("\n", "")
    assert records == br.sequences()  # accession names, soft-masking and N runs kept


@needs_kent
@pytest.mark.skipif(not (ECOLI / "genome" / "NC_000913.3.fa").is_file(), reason=f"shared E. coli data not found at {ECOLI}")
def test_ecoli_hubs_are_hubcheck_clean(tmp_path, monkeypatch):
    """The E. coli run's two hubs (assembly + GenArk GCF_000005845.2), written by `export` as the main
    job writes them (tracks here are stand-ins of the right contigs): hubCheck finds nothing."""
    from genometracks.formats.bigwig import write_bigwig
    from genometracks.genome.sequence import Genome

    for name in ("IGV_JS", "JBROWSE_JS"):
        (tmp_path / f"{name}.js").write_text("// stand-in\n")
        monkeypatch.setenv(f"GENOMETRACKS_{name}", str(tmp_path / f"{name}.js"))
    fasta = ECOLI / "genome" / "NC_000913.3.fa"
    sizes = Genome.open(fasta).chrom_sizes()
    values = np.zeros(sizes["NC_000913.3"], np.float32)
    values[1000:1010] = 0.5
    run = tmp_path / "run"
    for strand in ("plus", "minus"):
        write_bigwig(run / "tracks" / f"tss.{strand}.bw", sizes, {"NC_000913.3": values})
    written = br.export_organism(run, fasta, sizes, "Escherichia coli K-12 MG1655")
    assert written["hub"] == "hub/hub.txt" and written["hub_genark"] == "hub_genark/hub.txt"
    for hub in ("hub", "hub_genark"):
        assert_hub_clean(run / hub)
    alias = (run / "hub" / "NC_000913" / "chromAlias.txt").read_text()
    assert "U00096.3" in alias and "NC_000913.3" in alias
    # both hubs lead to the same opening locus: the assembly hub by defaultPos, the GenArk hub (whose
    # stanza UCSC reads no defaultPos from) by an hgTracks address with position= on its page
    opening = next(line.split()[1] for line in (run / "hub" / "genomes.txt").read_text().splitlines() if line.startswith("defaultPos"))
    assert "defaultPos" not in (run / "hub_genark" / "genomes.txt").read_text()
    page = (run / "hub_genark" / "description.html").read_text()
    assert f"genome=GCF_000005845.2&amp;hubUrl=https://YOUR.HOST/DIR/hub_genark/hub.txt&amp;position={opening.replace(':', '%3A')}" in page
    # export.genome_mode=genark writes the GenArk hub into DIR/hub: its page names that folder
    from genometracks.browser.export import export_run

    only = tmp_path / "only"
    for strand in ("plus", "minus"):
        write_bigwig(only / "tracks" / f"tss.{strand}.bw", sizes, {"NC_000913.3": values})
    assert export_run(only, fasta, sizes, {"genome_mode": "genark"}, "Escherichia coli K-12 MG1655")["hub_genark"] == "hub/hub.txt"
    assert "hubUrl=https://YOUR.HOST/DIR/hub/hub.txt&amp;position=" in (only / "hub" / "description.html").read_text()
