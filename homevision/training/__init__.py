"""What runs when a model is made: candidates, CV, selection, tuning, promotion, training."""
