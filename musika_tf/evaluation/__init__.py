"""Evaluation of generated audio: metrics computed with pretrained models shipped in pip wheels."""
