"""Writes the Excel fixtures the export tests read back (python3 -m pip install openpyxl).

people.xlsx: one sheet, a header repeated once, dates, numbers, booleans and an empty cell.
assets.xlsx: two sheets (Laptops, Phones) and an empty third one.
"""
import datetime
import pathlib

import openpyxl

here = pathlib.Path(__file__).parent

wb = openpyxl.Workbook()
ws = wb.active
ws.title = "Staff"
ws.append(["Email", "Name", "Start Date", "Salary", "Active", "Email"])
ws.append(["ada@acme.example", "Ada Lovelace", datetime.datetime(2021, 3, 1), 125000, True, "ada@home.example"])
ws.append(["alan@acme.example", "Alan Turing", datetime.datetime(2019, 11, 15, 9, 30), 118500.5, False, None])
ws.append(["grace@acme.example", "Grace Hopper", datetime.datetime(2023, 1, 9), 131000, True, "grace@home.example"])
wb.save(here / "people.xlsx")

wb = openpyxl.Workbook()
ws = wb.active
ws.title = "Laptops"
ws.append(["Serial", "Owner", "Purchased"])
ws.append(["C02XK1", "ada@acme.example", datetime.datetime(2022, 5, 4)])
ws.append(["C02XK2", "alan@acme.example", datetime.datetime(2020, 2, 1)])
ws = wb.create_sheet("Phones")
ws.append(["IMEI", "Owner"])
ws.append([356938035643809, "grace@acme.example"])
wb.create_sheet("Notes")
wb.save(here / "assets.xlsx")
