"""Sigma-factor promoter classes: a small CNN over promoter windows (sigma24/28/32/38/54/70),
cross-validated per class, with Grad-CAM class logos, exact first-layer kernel PWMs and a
sigma-class bigBed of TSS peak calls.

data.py (windows, PromoterSet, iPromoter-2L, negatives) · model.py (CNN + LightningModule) ·
evaluate.py (k-fold CV, metrics, ROC, `run_sigma`) · gradcam.py (class logos) ·
kernels.py (kernel PWMs) · track.py (sigma-class bigBed).
"""
