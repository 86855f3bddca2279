"""pixelpilot.agent"""
