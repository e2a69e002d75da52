"""The outbound dialer's pure core: abandonment compliance (more to come: estimators, the predictive pacer)."""
