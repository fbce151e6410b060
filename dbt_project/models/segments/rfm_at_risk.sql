-- RFM segment 'at_risk': the grid lives in int_customers_rfm_scored.
{{ rfm_audience('at_risk') }}
