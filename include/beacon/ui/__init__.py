"""The Beacon page in the Airflow UI: a read-only snapshot of what marketers need (snapshot), who may see
personal data (access), and the FastAPI app the Airflow plugin mounts (app). plugins/beacon_page.py stays thin."""
