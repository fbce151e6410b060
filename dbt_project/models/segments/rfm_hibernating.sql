-- RFM segment 'hibernating': the grid lives in int_customers_rfm_scored.
{{ rfm_audience('hibernating') }}
