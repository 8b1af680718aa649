"""What runs when a home is valued: the registered model, intervals, explanations, comps."""
