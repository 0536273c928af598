"""Customer analytics: store KPIs, RFM, lifecycle, cohorts and the probabilistic models."""
