"""UCSC's trackDb hub settings spec, version 3 (trackDbHub.v3), as hubCheck -checkSettings reads it:
setting name → support level. A setting not listed is "unknown/unsupported" to UCSC.

Copied from the spec UCSC serves at genome.ucsc.edu/goldenPath/help/trackDb/trackDbHub.v3.html
(tests/test_kent.py checks it against ../shared/tools/kent/spec/settings-v3.tsv where present).
Names such as `filter.<fieldName>` or `decorator.*` stand for a family: see `known_setting`.
"""
from __future__ import annotations

SETTINGS_BY_LEVEL: dict[str, tuple[str, ...]] = {
    "required": (
        'track', 'type', 'shortLabel', 'longLabel', 'bigDataUrl', 'visibility',
    ),
    "base": (
        'html', 'color', 'priority', 'itemRgb', 'colorByStrand', 'spectrum', 'autoScale',
        'maxHeightPixels', 'viewLimits', 'superTrack', 'parent', 'compositeTrack', 'subGroup1',
        'subGroup2', 'subGroup3', 'subGroup4', 'subGroup5', 'subGroup6', 'subGroup7', 'subGroup8',
        'subGroup9', 'subGroups', 'dimensions',
    ),
    "full": (
        'meta', 'altColor', 'boxedCfg', 'chromosomes', 'darkerLabels', 'dataVersion', 'directUrl',
        'downloadUrl', 'iframeUrl', 'iframeOptions', 'mouseOver', 'mouseOverField', 'otherDb',
        'pennantIcon', 'url', 'urlLabel', 'urls', 'skipEmptyFields', 'skipFields', 'sepFields',
        'refUrl', 'bigDataIndex', 'bamColorMode', 'bamGrayMode', 'aliQualRange', 'baseQualRange',
        'bamColorTag', 'noColorTag', 'bamSkipPrintQualScore', 'indelDoubleInsert',
        'indelQueryInsert', 'indelPolyA', 'minAliQual', 'pairEndsByName', 'pairSearchRange',
        'showNames', 'doWiggle', 'barChartBars', 'barChartColors', 'barChartLabel',
        'barChartMaxSize', 'barChartSizeWindows', 'barChartMetric', 'barChartUnit',
        'barChartCategoryUrl', 'barChartSampleUrl', 'maxLimit', 'denseCoverage', 'labelOnFeature',
        'exonArrows', 'exonNumbers', 'scoreFilter', 'scoreFilterLimits', 'maxItems',
        'maxWindowCoverage', 'maxWindowToDraw', 'minGrayLevel', 'noScoreFilter', 'scoreMax',
        'scoreMin', 'thickDrawItem', 'searchIndex', 'searchTrix', 'labelFields',
        'defaultLabelFields', 'labelSeparator', 'filter.<fieldName>', 'filterByRange.<fieldName>',
        'filterLimits.<fieldName>', 'filterText.<fieldName>', 'filterType.<fieldName>',
        'filterValues.<fieldName>', 'filterValuesDefault.<fieldName>', 'filterLabel.<fieldName>',
        'bedNameLabel', 'exonArrowsDense', 'itemImagePath', 'itemBigImagePath', 'mergeSpannedItems',
        'linkIdInName', 'nextExonText', 'prevExonText', 'scoreLabel', 'showTopScorers',
        'linkDataUrl', 'baseColorUseSequence', 'baseColorDefault', 'interactDirectional',
        'interactUp', 'interactMultiRegion', 'endsVisible', 'speciesOrder', 'frames', 'summary',
        'pValueFilter', 'qValueFilter', 'signalFilter', 'baseColorUseCds', 'showDiffBasesAllScales',
        'viewLimitsMax', 'alwaysZero', 'graphTypeDefault', 'maxWindowToQuery', 'negateValues',
        'setColorWith', 'smoothingWindow', 'transformFunc', 'windowingFunction', 'yLineMark',
        'yLineOnOff', 'gridDefault', 'noStems', 'lollySizeField', 'lollyMaxSize', 'lollyField',
        'yAxisLabel.<integer>', 'yAxisNumLabels', 'drawMode', 'normalization', 'resolution',
        'saturationScore', 'showSnpWidth', 'otherSpecies', 'hapClusterEnabled', 'hapClusterMethod',
        'hapClusterColorBy', 'geneTrack', 'hapClusterTreeAngle', 'hapClusterHeight', 'applyMinQual',
        'minQual', 'minFreq', 'vcfDoFilter', 'vcfDoQual', 'vcfDoMaf', 'vcfChildSample',
        'vcfParentSamples', 'vcfUseAltSampleNames', 'allButtonPair', 'centerLabelsDense',
        'dragAndDrop', 'hideEmptySubtracks', 'hideEmptySubtracksMultiBedUrl',
        'hideEmptySubtracksSourcesUrl', 'hideEmptySubtracksLabel', 'filterComposite',
        'dimensionAchecked', 'dimensionBchecked', 'dimensionCchecked', 'sortOrder', 'view',
        'viewUi', 'configurable', 'container', 'aggregate', 'showSubtrackColorOnUi',
    ),
    "new": (
        'barChartStretchToItem', 'barChartFacets', 'barChartStatsUrl', 'barChartMerge',
        'barChartBarMinPadding', 'barChartBarMinWidth', 'detailsStaticTable', 'detailsDynamicTable',
        'decorator.*', 'highlight.<fieldName>', 'highlightByRange.<fieldName>',
        'highlightLimits.<fieldName>', 'highlightText.<fieldName>', 'highlightType.<fieldName>',
        'highlightValues.<fieldName>', 'highlightValuesDefault.<fieldName>', 'highlightColor',
        'otherTwoBitUrl', 'detailsBoxesEnabled', 'speciesLabels', 'pslSequence', 'showCdsAllScales',
        'showCdsMaxZoom', 'showDiffBasesMaxZoom', 'logo', 'logoMaf', 'hicDistanceMin',
        'hicDistanceMax',
    ),
    "deprecated": (
        'extraDetailsTable', 'extraTableFields', 'metadata', 'noInherit', 'useScore',
    ),
}

SETTINGS: dict[str, str] = {name: level for level, names in SETTINGS_BY_LEVEL.items() for name in names}
_FAMILIES = tuple(name.split(".", 1)[0] + "." for name in SETTINGS if "." in name)


def known_setting(name: str) -> bool:
    """True when UCSC's hub spec knows the trackDb setting `name` (families like `filter.score` included)."""
    return name in SETTINGS or any(name.startswith(prefix) and len(name) > len(prefix) for prefix in _FAMILIES)


def suggestion(name: str) -> str | None:
    """A known setting that `name` is probably a slip for (hubCheck's 'did you mean'), or None."""
    import difflib

    lower = name.lower()
    starts = sorted(s for s in SETTINGS if "." not in s and s.lower().startswith(lower))
    if starts:
        return starts[0]
    close = difflib.get_close_matches(name, [s for s in SETTINGS if "." not in s], n=1, cutoff=0.8)
    return close[0] if close else None
