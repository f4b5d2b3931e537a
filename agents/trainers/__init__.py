"""The supervised trainers: SFT warm start, the Bradley-Terry reward model, the sentiment
classifier behind the ``sentiment`` reward, and the loop and backbones they share."""
