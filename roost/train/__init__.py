"""Training stages: pretraining (``roost.train.pretrain.train``) and chat fine-tuning (``roost.train.sft.sft``).

This file imports nothing, so ``from roost.train import dist`` (or any other
submodule) loads just that module, whatever was imported before.
"""
